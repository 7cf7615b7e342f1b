"""Build the functions' deployable code asset: deploy/aws/build/lambda/ (ghingest[aws] and every dependency).

    python deploy/aws/bundle.py [--out DIR]

pip resolves the wheels for the Lambda platform, not this machine's: `--platform manylinux2014_aarch64
--implementation cp --python-version 3.12 --only-binary=:all:` (arm64, Python 3.12: ghingest_cdk/sizing.py), so a
dependency without such a wheel fails here, not at the first invocation. ghingest itself is built into a wheel first
(pure Python), since `--only-binary` refuses to build from a source tree. This needs the package index; `make synth`
does not: without a bundle, the stack's asset is ghingest's source alone and it warns that it cannot run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]

PYTHON_VERSION = "3.12"  # sizing.RUNTIME
PIP_PLATFORM = "manylinux2014_aarch64"  # sizing.ARCHITECTURE (sizing imports aws_cdk, which needs node: not here)


def bundle(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as wheels:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", wheels, str(REPOSITORY)], check=True)
        (wheel,) = Path(wheels).glob("github_event_ingester-*.whl")
        subprocess.run(
            [
                *pip,
                "install",
                "--target",
                str(out),
                "--platform",
                PIP_PLATFORM,
                "--implementation",
                "cp",
                "--python-version",
                PYTHON_VERSION,
                "--only-binary=:all:",
                "--no-compile",  # byte code is written by Lambda's own interpreter if at all; keeps the hash stable
                f"{wheel}[aws]",
            ],
            check=True,
        )
    for cache in out.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    print(f"bundled ghingest[aws] for {PIP_PLATFORM} / Python {PYTHON_VERSION} into {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "build" / "lambda")
    bundle(parser.parse_args().out.resolve())


if __name__ == "__main__":
    main()
