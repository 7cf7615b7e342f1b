"""Create the AWS profile's resources from `schema` for tests and local runs against moto or LocalStack (in AWS,
the CDK stack in `deploy/aws/` creates them from the same `schema`; this never runs in a Lambda function).

Idempotent: what exists already is kept. Names derive from the table's: `<table>-deliveries` (SNS),
`<table>-inbox` and its dead-letter queue `<table>-inbox-dlq` (SQS, redrive after `inbox_max_receives` receives),
`<table>-forwards` (SNS) and the payload bucket (`payload_bucket`, else `<table>-payloads`, lower case). The inbox
queue is subscribed to the deliveries topic with raw message delivery, as the stack does: its messages are the
notices themselves. Per-destination forward queues are the forward queue's (`create_missing_queues`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import orjson

from ghingest.adapters.aws import schema
from ghingest.adapters.aws.clients import AwsClients, is_error
from ghingest.adapters.aws.feed import ensure_epoch
from ghingest.adapters.aws.forward_queues import queue_arn, sns_may_send
from ghingest.adapters.aws.options import AwsOptions
from ghingest.adapters.aws.table import TableContext
from ghingest.ports import SYSTEM_CLOCK


def provision(options: AwsOptions, clients: AwsClients, destinations: Sequence[str] = ()) -> AwsOptions:
    """Create the table (with its epoch), topics, inbox queues and bucket; `options` with their addresses."""
    if destinations:
        raise NotImplementedError("forward queues are created by the forward queue (create_missing_queues)")
    _create_table(clients, options.table)
    ensure_epoch(TableContext(options, clients, SYSTEM_CLOCK))
    deliveries = clients.sns.create_topic(Name=f"{options.table}-deliveries")["TopicArn"]
    forwards = clients.sns.create_topic(Name=f"{options.table}-forwards")["TopicArn"]
    inbox = _create_inbox(clients, options, deliveries)
    bucket = options.payload_bucket or f"{options.table}-payloads".lower()
    _create_bucket(clients, bucket, options.region)
    return dataclasses.replace(
        options,
        deliveries_topic_arn=deliveries,
        inbox_queue_url=inbox,
        forwards_topic_arn=forwards,
        payload_bucket=bucket,
    )


def _create_table(clients: AwsClients, table: str) -> None:
    try:
        clients.dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name in schema.KEY_ATTRIBUTES],
            KeySchema=[
                {"AttributeName": schema.PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": schema.SORT_KEY, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.partition_key, "KeyType": "HASH"},
                        {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index in schema.INDEXES
            ],
        )
    except Exception as exc:
        if not is_error(exc, "ResourceInUseException"):
            raise
    clients.dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = clients.dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        clients.dynamodb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE}
        )


def _create_inbox(clients: AwsClients, options: AwsOptions, topic_arn: str) -> str:
    dead_letters = queue_arn(clients.sqs, clients.sqs.create_queue(QueueName=f"{options.table}-inbox-dlq")["QueueUrl"])
    redrive = {"deadLetterTargetArn": dead_letters, "maxReceiveCount": options.inbox_max_receives}
    url = str(clients.sqs.create_queue(QueueName=f"{options.table}-inbox")["QueueUrl"])
    arn = queue_arn(clients.sqs, url)
    clients.sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={"RedrivePolicy": orjson.dumps(redrive).decode(), "Policy": sns_may_send(arn, topic_arn)},
    )
    subscribed = clients.sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    if not any(s.get("Endpoint") == arn for s in subscribed):
        clients.sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
        )
    return url


def _create_bucket(clients: AwsClients, bucket: str, region: str | None) -> None:
    try:
        if region in (None, "us-east-1"):
            clients.s3.create_bucket(Bucket=bucket)
        else:
            clients.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except Exception as exc:
        if not is_error(exc, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
