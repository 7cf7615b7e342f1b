"""The one code asset every function runs: a bundle made by `bundle.py`, else a source-only copy of `ghingest`.

A deployable asset holds ghingest and its dependencies built for the Lambda platform (`bundle.py`: pip with
`--platform manylinux2014_aarch64 --only-binary=:all:`), which needs the network. Synthesis must not, so without a
bundle the asset is a copy of the `ghingest` package alone: the template is the same but for the asset's hash, and
the stack carries a warning that this asset cannot run (its dependencies are missing).

The route file, when given, is copied into the asset as `routes.toml`, and the functions are pointed at it with
`GHINGEST_ROUTES_FILE`: the processor decides from it what is forwarded, the forwarder and dashboard read the
destinations from it, and the stack's queues and filter policies were made from the same file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import aws_cdk.aws_lambda as lambda_

import ghingest

from .config import StackConfig

ROUTES_IN_ASSET = "routes.toml"
LAMBDA_TASK_ROOT = "/var/task"  # where Lambda unpacks the asset


@dataclass(frozen=True, slots=True)
class LambdaCode:
    code: lambda_.Code
    routes_file: str | None  # GHINGEST_ROUTES_FILE inside the function, when the asset has the route file
    source_only: bool


def _place_routes(asset: Path, routes_file: Path | None) -> str | None:
    target = asset / ROUTES_IN_ASSET
    if routes_file is None:
        target.unlink(missing_ok=True)  # a route file left by an earlier synth must not ship
        return None
    shutil.copyfile(routes_file, target)
    return f"{LAMBDA_TASK_ROOT}/{ROUTES_IN_ASSET}"


def _stage_source(build_dir: Path) -> Path:
    """`<build_dir>/source/ghingest`: the installed package's files, without byte code (a stable asset hash)."""
    staging = build_dir / "source"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(
        Path(ghingest.__file__).resolve().parent,
        staging / "ghingest",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return staging


def lambda_code(config: StackConfig) -> LambdaCode:
    asset = config.lambda_bundle if config.lambda_bundle is not None else _stage_source(config.build_dir)
    routes = _place_routes(asset, config.routes_file)
    code = lambda_.Code.from_asset(str(asset), exclude=["**/__pycache__", "**/*.pyc"])
    return LambdaCode(code=code, routes_file=routes, source_only=config.lambda_bundle is None)
