"""Synthesize the AWS serverless profile's stack into deploy/aws/cdk.out/, offline.

Run with python (`make synth`, or `python deploy/aws/app.py -c routesFile=routes.toml`), or as the `app` of
the CDK CLI (deploy/aws/cdk.json), which passes its `-c` values in the CDK_CONTEXT_JSON environment variable.
No AWS account, credentials, lookups or Docker are needed: the stack is environment-agnostic and its code asset is a
directory (deploy/aws/README.md).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # ghingest_cdk, whatever the working directory

from ghingest_cdk import require_node  # noqa: E402 (after the path it is found on)

STACK_NAME = "GhingestStack"


def context_arguments(argv: Sequence[str]) -> dict[str, str]:
    """`-c key=value` / `--context key=value` pairs, as the CDK CLI takes them."""
    context: dict[str, str] = {}
    items = list(argv)
    while items:
        flag = items.pop(0)
        if flag not in ("-c", "--context") or not items or "=" not in items[0]:
            raise SystemExit(f"usage: app.py [-c key=value]... (got {flag!r})")
        key, _, value = items.pop(0).partition("=")
        context[key] = value
    return context


def main(argv: Sequence[str]) -> None:
    require_node()  # before aws_cdk starts node and fails with a stack trace

    from aws_cdk import App
    from ghingest_cdk.config import ConfigError, config_from_context
    from ghingest_cdk.stack import GhingestStack

    context = context_arguments(argv)
    outdir = os.environ.get("CDK_OUTDIR")  # the CDK CLI names its own
    if outdir is None:
        outdir = str(HERE / "cdk.out")
        shutil.rmtree(outdir, ignore_errors=True)  # ours: no asset of an earlier synth left behind
    app = App(outdir=outdir, context=context or None)
    values = {key: app.node.try_get_context(key) for key in ("routesFile", "destinations", "lambdaBundle", "buildDir")}
    try:
        config = config_from_context({k: v for k, v in values.items() if v is not None}, base=Path.cwd())
    except ConfigError as exc:
        raise SystemExit(f"deploy/aws: {exc}") from None
    GhingestStack(app, STACK_NAME, config=config)
    assembly = app.synth()
    for message in assembly.get_stack_artifact(STACK_NAME).messages:
        if message.level.value != "info":  # warnings and errors, as the CDK CLI would show them
            print(f"{message.level.value}: {message.entry.data}", file=sys.stderr)
    print(f"synthesized {STACK_NAME} into {assembly.directory}", file=sys.stderr)  # stdout is the CLI's


if __name__ == "__main__":
    main(sys.argv[1:])
