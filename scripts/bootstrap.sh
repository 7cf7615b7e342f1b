#!/usr/bin/env bash
# Create the virtual environment and install ghingest with its development tools.
# On a fresh Debian machine python3 may lack the venv module; install it when we can (as root).
set -euo pipefail
venv="${1:-.venv}"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing python3-venv (Debian)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    echo "bootstrap: python3 has no venv module; install Debian's python3-venv (sudo apt-get install python3-venv)" >&2
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
