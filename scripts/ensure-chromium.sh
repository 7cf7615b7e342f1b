#!/usr/bin/env bash
# The browser tests drive Debian's Chromium; install it when missing (a test tool's own browser download cannot
# work on these machines).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing Debian's chromium" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure-chromium: chromium is missing; install Debian's chromium package (browser tests will be skipped)" >&2
fi
