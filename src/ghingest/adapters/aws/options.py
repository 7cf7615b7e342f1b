"""What the AWS adapters need to know of their resources: names and addresses, from the settings (the CDK stack
sets them on every Lambda function) or from the test provisioner."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ghingest.app.settings import Settings

URL_SCHEME = "dynamodb://"
INBOX_MAX_RECEIVES = 10  # the inbox queue's redrive maxReceiveCount (the CDK stack's): a claim at it is exhausted


@dataclass(frozen=True, slots=True)
class AwsOptions:
    table: str
    region: str | None = None
    endpoint_url: str | None = None  # one endpoint for every service (moto server); None: AWS's own
    deliveries_topic_arn: str | None = None
    inbox_queue_url: str | None = None
    forwards_topic_arn: str | None = None
    forward_queues: Mapping[str, str] = field(default_factory=dict)  # destination -> queue URL
    forward_dead_letter_queues: Mapping[str, str] = field(default_factory=dict)  # destination -> DLQ URL
    payload_bucket: str | None = None
    payload_retention_days: int = 0  # days after which a body item expires (its TTL); 0: bodies are kept
    inbox_max_receives: int = INBOX_MAX_RECEIVES
    sweep_after: float = 600.0  # s: a delivery still unpublished this long after receipt is published again
    # Tests and local runs only: a destination with no queue gets one (with its DLQ and its subscription to the
    # forwards topic) on first use. In AWS the CDK stack creates them from the routes file.
    create_missing_queues: bool = False


def table_of(url: str) -> str:
    """The table name of a `dynamodb://TABLE` URL."""
    if not url.startswith(URL_SCHEME) or not url[len(URL_SCHEME) :].strip("/"):
        raise ValueError(f"not a DynamoDB URL: {url!r} (expected dynamodb://TABLE)")
    return url[len(URL_SCHEME) :].strip("/")


def options_from_settings(settings: Settings) -> AwsOptions:
    return AwsOptions(
        table=table_of(settings.database_url),
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        deliveries_topic_arn=settings.aws_deliveries_topic_arn,
        inbox_queue_url=settings.aws_inbox_queue_url,
        forwards_topic_arn=settings.aws_forwards_topic_arn,
        forward_queues=dict(settings.aws_forward_queues),
        forward_dead_letter_queues=dict(settings.aws_forward_dead_letter_queues),
        payload_bucket=settings.aws_payload_bucket,
        payload_retention_days=settings.aws_payload_retention_days,
        sweep_after=settings.aws_sweep_after,
        create_missing_queues=settings.aws_create_missing_queues,
    )
