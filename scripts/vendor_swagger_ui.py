#!/usr/bin/env python3
"""Vendor Swagger UI (the npm package `swagger-ui-dist`, pinned) into the package, for the API page at `/docs`.

    python3 scripts/vendor_swagger_ui.py               # npm pack the pinned version into a temp dir
    python3 scripts/vendor_swagger_ui.py --package DIR # or use an unpacked package (DIR/swagger-ui-bundle.js, ...)

Copies only what the page loads (the bundle and its stylesheet) and the licence texts into
`src/ghingest/app/static/swagger-ui/`, drops the stylesheet's source-map comment (the map is not shipped, so a
browser's developer tools would ask the app for a file it does not have) and writes `VERSION` with the package
version and each file's SHA-256. The files are committed and ship in the wheel (ADR 0027): the page makes no request
outside the app. Bump `VERSION` below, re-run, look at `/docs`, and review the diff.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "swagger-ui-dist"
VERSION = "5.35.0"
ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "ghingest" / "app" / "static" / "swagger-ui"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt")
_SOURCE_MAP = re.compile(rb"\s*/\*# sourceMappingURL=[^*]*\*/\s*$")


def _packed(folder: Path) -> Path:
    """`npm pack` the pinned version into `folder` and unpack it; the package's root folder."""
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=folder, check=True, capture_output=True)
    with tarfile.open(folder / f"{PACKAGE}-{VERSION}.tgz") as archive:
        archive.extractall(folder, filter="data")
    return folder / "package"


def vendor(package: Path) -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    lines = [f"{PACKAGE} {VERSION}"]
    for name in FILES:
        data = (package / name).read_bytes()
        if name.endswith(".css"):
            data = _SOURCE_MAP.sub(b"\n", data)
        (TARGET / name).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
    (TARGET / "VERSION").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help="an unpacked swagger-ui-dist package (default: npm pack it)")
    args = parser.parse_args()
    if args.package is not None:
        vendor(args.package)
        return
    with tempfile.TemporaryDirectory() as folder:
        vendor(_packed(Path(folder)))


if __name__ == "__main__":
    main()
