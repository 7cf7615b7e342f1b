"""Memory and timeouts of the six functions, as constants: queue visibility timeouts are derived from them at
synth time, which a CloudFormation parameter (a token) would not allow. docs/aws/cost.md prices these sizes.

arm64 (Graviton): about 20% less per GB-second than x86_64 at the same memory, and every compiled dependency of
ghingest (orjson, pydantic-core, argon2-cffi-bindings, nh3, sqlalchemy, aiohttp) publishes manylinux2014_aarch64
wheels, so `bundle.py` needs no build toolchain for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
PIP_PLATFORM = "manylinux2014_aarch64"  # bundle.py's --platform for ARCHITECTURE
LOG_RETENTION = logs.RetentionDays.ONE_MONTH  # every log group's, the API's access log too
VISIBILITY_FACTOR = 6  # queue visibility timeout = 6 x the consuming function's timeout (AWS's advice)


@dataclass(frozen=True, slots=True)
class Sizing:
    handler: str
    memory_mb: int
    timeout_seconds: int
    description: str


RECEIVER = Sizing(
    "ghingest.app.aws_lambda.receiver.handler",
    memory_mb=1024,  # CPU scales with memory: HMAC and JSON checks of a body up to 6 MB stay well under 1 s
    timeout_seconds=10,  # GitHub gives up after 10 s
    description="ghingest receiver: verifies, records and announces a webhook delivery",
)
PROCESSOR = Sizing(
    "ghingest.app.aws_lambda.processor.handler",
    memory_mb=1024,
    timeout_seconds=60,
    description="ghingest processor: records events and releases from the inbox queue",
)
FORWARDER = Sizing(
    "ghingest.app.aws_lambda.forwarder.handler",
    memory_mb=512,
    timeout_seconds=330,  # a destination may take up to 300 s (routes' timeout limit), plus the batch's rest
    description="ghingest forwarder: sends forward jobs to their destinations",
)
DASHBOARD = Sizing(
    "ghingest.app.aws_lambda.dashboard.handler",
    memory_mb=1024,
    timeout_seconds=29,  # API Gateway's HTTP API waits at most 30 s for an integration
    description="ghingest dashboard and read API (the ASGI application through Mangum)",
)
SWEEPER = Sizing(
    "ghingest.app.aws_lambda.sweeper.handler",
    memory_mb=512,
    timeout_seconds=240,  # ends before the next run (every 5 minutes)
    description="ghingest sweeper: republishes deliveries and forward jobs that were recorded, never announced",
)
GITHUB_SYNC = Sizing(
    "ghingest.app.aws_lambda.github_sync.handler",
    memory_mb=512,  # mostly waiting on GitHub's API
    # Ends before the next run (every GitHubSyncMinutes, at least 5): the handler starts no hook, redelivery request
    # or poll with less than 30 s left, and a GitHub wait longer than GITHUB_SYNC_MAX_WAIT ends the run instead.
    timeout_seconds=280,
    description="ghingest GitHub sync: reconciles hooks with GitHub's deliveries API, polls tracked releases",
)
GITHUB_SYNC_MAX_WAIT = 20  # s: GHINGEST_GITHUB_MAX_WAIT of the GitHub sync (below its 30 s reserve)
