"""The notices between the functions: two SNS topics, the inbox queue and one queue per forwarding destination.

deliveries topic → inbox queue → processor: the receiver publishes a notice once the delivery is recorded; the
queue's redrive to its dead-letter queue bounds how often one notice is tried.
forwards topic → one queue per destination → forwarder: a subscription per destination, filtered on the notice's
`destination` attribute (and its routes' events and actions), so that a slow or failing destination backs up
only its own queue, with its own dead-letter queue, alarm and concurrency.

Every topic and queue is encrypted with the stack's key; subscriptions deliver raw messages (the notice's body and
attributes as published). Visibility timeouts are six times the consumer's timeout, as AWS advises for a Lambda
event source (a batch may wait while the function retries throttled invocations).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from ghingest.adapters.aws import schema

from .config import DestinationSpec
from .sizing import FORWARDER, PROCESSOR, VISIBILITY_FACTOR

RETENTION = Duration.days(14)  # SQS's longest: notices outlive an outage of the consumers
INBOX_MAX_RECEIVE_COUNT = 10


@dataclass(frozen=True, slots=True)
class ForwardQueue:
    destination: DestinationSpec
    scope: Construct  # Destination-{name}: its queues, subscription and alarms
    queue: sqs.Queue
    dead_letter_queue: sqs.Queue


@dataclass(frozen=True, slots=True)
class Messaging:
    deliveries_topic: sns.Topic
    forwards_topic: sns.Topic
    alarm_topic: sns.Topic
    inbox_queue: sqs.Queue
    inbox_dead_letter_queue: sqs.Queue
    forward_queues: tuple[ForwardQueue, ...]


def _queue_pair(
    scope: Construct, name: str, key: kms.Key, *, visibility: Duration, max_receive_count: int
) -> tuple[sqs.Queue, sqs.Queue]:
    dead_letters = sqs.Queue(
        scope,
        f"{name}DeadLetterQueue",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        retention_period=RETENTION,
        enforce_ssl=True,
    )
    queue = sqs.Queue(
        scope,
        f"{name}Queue",
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        retention_period=RETENTION,
        visibility_timeout=visibility,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=max_receive_count),
    )
    return queue, dead_letters


def _filter(policy: dict[str, list[str]]) -> dict[str, sns.SubscriptionFilter]:
    unknown = set(policy) - set(schema.FORWARD_NOTICE_ATTRIBUTES)
    assert not unknown, f"the forwarder's notices carry no attribute {unknown}"
    return {name: sns.SubscriptionFilter.string_filter(allowlist=values) for name, values in policy.items()}


def define_messaging(scope: Construct, key: kms.Key, destinations: tuple[DestinationSpec, ...]) -> Messaging:
    deliveries = sns.Topic(scope, "DeliveriesTopic", master_key=key, enforce_ssl=True)
    forwards = sns.Topic(scope, "ForwardsTopic", master_key=key, enforce_ssl=True)
    alarms = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True)
    inbox, inbox_dead_letters = _queue_pair(
        scope,
        "Inbox",
        key,
        visibility=Duration.seconds(PROCESSOR.timeout_seconds * VISIBILITY_FACTOR),
        max_receive_count=INBOX_MAX_RECEIVE_COUNT,
    )
    deliveries.add_subscription(subscriptions.SqsSubscription(inbox, raw_message_delivery=True))
    forward_queues: list[ForwardQueue] = []
    for spec in destinations:
        scoped = Construct(scope, f"Destination-{spec.name}")
        queue, dead_letters = _queue_pair(
            scoped,
            "Forward",
            key,
            visibility=Duration.seconds(FORWARDER.timeout_seconds * VISIBILITY_FACTOR),
            max_receive_count=spec.max_receive_count,
        )
        forwards.add_subscription(
            subscriptions.SqsSubscription(queue, raw_message_delivery=True, filter_policy=_filter(spec.filter_policy()))
        )
        forward_queues.append(ForwardQueue(destination=spec, scope=scoped, queue=queue, dead_letter_queue=dead_letters))
    return Messaging(
        deliveries_topic=deliveries,
        forwards_topic=forwards,
        alarm_topic=alarms,
        inbox_queue=inbox,
        inbox_dead_letter_queue=inbox_dead_letters,
        forward_queues=tuple(forward_queues),
    )
