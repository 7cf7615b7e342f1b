"""Which SQS queue carries each destination's notices, and its dead-letter queue.

In AWS the CDK stack makes one queue (with its DLQ and its filtered subscription of the forwards topic) per
destination of the routes file, and the settings name them (`options.forward_queues`). With
`options.create_missing_queues` (tests and local runs) a destination's queue is made on first dispatch and found by
name (`queue_name`) by every other process of the same table.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

import orjson
import structlog

from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import TableContext

log = structlog.get_logger("ghingest.aws.forwarding")

# A created queue's redrive (tests and local runs) is a safety net only: the adapter itself moves a dead job's notice
# to the DLQ, and receives that are not attempts (a job not due yet, a crashed claimer's) count as receives too.
_CREATED_MAX_RECEIVES = 50
_NOT_IN_QUEUE_NAMES = re.compile(r"[^A-Za-z0-9_-]")
_MAX_QUEUE_NAME = 80
_NO_QUEUE_CODES = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_name(table: str, destination: str) -> str:
    """The queue a created destination gets (`<table>-fwd-<destination>`, its DLQ `…-dlq`), in SQS's alphabet and
    80 characters: a longer name is cut and made unique by a hash of the whole."""
    name = _NOT_IN_QUEUE_NAMES.sub("_", f"{table}-fwd-{destination}")
    room = _MAX_QUEUE_NAME - len("-dlq")
    if len(name) <= room:
        return name
    return f"{name[: room - 13]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def queue_arn(sqs: Any, url: str) -> str:
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(answer["Attributes"]["QueueArn"])


def sns_may_send(queue_arn: str, topic_arn: str) -> str:
    """A queue policy that lets the topic's subscription deliver to the queue (and nothing else)."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
    }
    return orjson.dumps({"Version": "2012-10-17", "Statement": [statement]}).decode()


class ForwardQueues:
    """Each destination's queue and DLQ: configured, or (in create mode) created or found. Blocking: called on the
    adapters' threads."""

    def __init__(self, db: TableContext) -> None:
        self._db = db
        self._queues: dict[str, str] = dict(db.options.forward_queues)
        self._dead_letters: dict[str, str] = dict(db.options.forward_dead_letter_queues)
        self._lock = threading.Lock()  # one creation of a destination's queue at a time

    @property
    def _creating(self) -> bool:
        return self._db.options.create_missing_queues

    def urls(self) -> list[str]:
        """Every queue URL known: the configured ones, and in create mode every created one of this table."""
        found = dict.fromkeys(self._queues.values())
        if self._creating:
            answer = self._db.clients.sqs.list_queues(QueueNamePrefix=self._name(""), MaxResults=1000)
            found.update(dict.fromkeys(u for u in answer.get("QueueUrls", []) if not u.endswith("-dlq")))
        return list(found)

    def url(self, destination: str, *, create: bool) -> str | None:
        """The destination's queue; None when it has none. In create mode, `create` makes it (idempotent, once per
        process: its subscription must exist before a notice is published), else an existing one is found."""
        url = self._queues.get(destination)
        if url is not None or not self._creating:
            return url
        with self._lock:
            if destination not in self._queues:
                found = self._create(destination) if create else self._existing(self._name(destination))
                if found is None:
                    return None
                self._queues[destination] = found
            return self._queues[destination]

    def dead_letter_url(self, destination: str) -> str | None:
        url = self._dead_letters.get(destination)
        if url is None and self._creating:
            url = self._existing(self._name(destination) + "-dlq")
            if url is not None:
                self._dead_letters[destination] = url
        return url

    def _name(self, destination: str) -> str:
        return queue_name(self._db.table, destination)

    def _existing(self, name: str) -> str | None:
        try:
            return str(self._db.clients.sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except Exception as exc:
            if is_error(exc, *_NO_QUEUE_CODES):
                return None
            raise

    def _create(self, destination: str) -> str:
        sqs, topic = self._db.clients.sqs, self._db.options.forwards_topic_arn
        name = self._name(destination)
        dlq = str(sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"])
        redrive = {"deadLetterTargetArn": queue_arn(sqs, dlq), "maxReceiveCount": str(_CREATED_MAX_RECEIVES)}
        url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = queue_arn(sqs, url)
        attributes = {"RedrivePolicy": orjson.dumps(redrive).decode()}
        if topic is not None:
            attributes["Policy"] = sns_may_send(arn, topic)
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        if topic is not None:
            self._db.clients.sns.subscribe(
                TopicArn=topic,
                Protocol="sqs",
                Endpoint=arn,
                Attributes={
                    "RawMessageDelivery": "true",
                    "FilterPolicy": orjson.dumps({"destination": [destination]}).decode(),
                },
            )
        self._dead_letters[destination] = dlq
        log.info("forward.queue_created", destination=destination, queue=name)
        return url
