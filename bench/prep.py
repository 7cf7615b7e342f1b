"""Pre-generate signed ~8 KB `release` payloads for the load generators.

`X-GitHub-Delivery` is not covered by the signature, so the load tools cycle over these bodies and give every
request a fresh delivery id. Many distinct release ids across many repositories keep release folding realistic
(each release receives several deliveries: created, published, edited, ...).

Output: one line per body, `<sha256 signature> <body>` (orjson never writes a raw newline), readable from Lua.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from ghingest.app import samples
from ghingest.core.signature import sign

ACTIONS = ("created", "published", "edited", "prereleased", "released", "edited")


def bodies(count: int, releases: int, repos: int) -> list[bytes]:
    out = []
    for i in range(count):
        release = i % releases
        repo = release % repos
        round_ = i // releases
        action = ACTIONS[round_ % len(ACTIONS)]
        edits = sum(1 for r in range(round_ + 1) if ACTIONS[r % len(ACTIONS)] == "edited")
        tag = f"v{release // repos}.{release % 7}.0"
        payload = samples.release_payload(
            action=action,
            release_id=9_000_000 + release,
            tag=tag,
            repository_name=f"bench-org-{repo % 17}/service-{repo}",
            author=f"dev-{release % 53}",
            # as on GitHub, only an edit changes the notes; the other actions carry the notes as they were
            body=f"## What's changed\n\n* Release {release}, revision {edits}: fixes and improvements.\n" * 3,
        )
        out.append(orjson.dumps(payload))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--count", type=int, default=2000, help="distinct bodies")
    parser.add_argument("--releases", type=int, default=500, help="distinct release ids")
    parser.add_argument("--repos", type=int, default=100, help="distinct repositories")
    args = parser.parse_args()
    key = args.secret.encode()
    lines = []
    sizes = []
    for body in bodies(args.count, args.releases, args.repos):
        assert b"\n" not in body
        lines.append(sign(body, key).encode() + b" " + body)
        sizes.append(len(body))
    args.out.write_bytes(b"\n".join(lines) + b"\n")
    print(f"{len(lines)} bodies, {args.releases} releases, mean {sum(sizes) // len(sizes)} bytes -> {args.out}")


if __name__ == "__main__":
    main()
