"""Forwarding on the AWS profile against a moto server (tests/aws_support.py): real SQS timers, so time here is
the wall clock and waits are polls with a deadline, never fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest

from ghingest.adapters.aws import AwsOptions
from ghingest.adapters.aws.clients import AwsClients
from ghingest.adapters.aws.forward_queues import queue_name
from ghingest.app.samples import release_payload
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import ForwardTarget
from ghingest.ports import AttemptResult, Outcome
from tests.aws_support import aws_backend, fresh_aws
from tests.contract.support import incoming, ingest

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class WallClock:
    """The wall clock, with the `advance` that the contract helpers call (spacing 0: a no-op)."""

    def now(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        assert seconds == 0, "the wall clock cannot be moved"


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def options() -> AwsOptions:
    return fresh_aws("fwd")


@pytest.fixture
async def backend(options: AwsOptions, clock: WallClock) -> AsyncIterator[Any]:
    async with aws_backend(options, clock) as opened:
        yield opened


async def route(backend: Any, clock: WallClock, routes: dict[str, list[ForwardTarget]]) -> list[Outcome]:
    """One release delivery per id, processed with `routes` (its forward jobs created and dispatched)."""
    deliveries = [incoming(d, payload=release_payload(release_id=100 + n)) for n, d in enumerate(routes)]
    return await ingest(backend, deliveries, clock, forwards=routes)


def result(job: Any, status: ForwardStatus, *, code: int | None = 200, next_at: float | None = None) -> AttemptResult:
    return AttemptResult(
        job_id=job.id,
        destination=job.destination,
        started_at=time.time(),
        latency=0.01,
        status_code=code,
        error=None,
        response_excerpt=None,
        next_status=status,
        next_attempt_at=next_at,
    )


async def poll(check: Callable[[], Awaitable[T]], *, timeout: float = 15.0, interval: float = 0.1) -> T:
    """`check()` until it returns something true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        await asyncio.sleep(interval)


class Queues:
    """Direct access to the destinations' queues (what a test checks beside the ports)."""

    def __init__(self, options: AwsOptions) -> None:
        self.options = options
        self.sqs = AwsClients(options).sqs

    def url(self, destination: str, *, dead: bool = False) -> str:
        name = queue_name(self.options.table, destination) + ("-dlq" if dead else "")
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def drain(self, destination: str, *, dead: bool = False) -> list[int]:
        """The job ids of the visible notices in a queue (received, then deleted)."""
        url, found = self.url(destination, dead=dead), []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                found.append(orjson.loads(message["Body"])["job_id"])
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return sorted(found)

    def depth(self, destination: str) -> int:
        """Messages in a queue, visible or in flight."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        answer = self.sqs.get_queue_attributes(QueueUrl=self.url(destination), AttributeNames=names)
        return sum(int(answer["Attributes"][name]) for name in names)

    def send_notice(self, destination: str, job_id: int) -> None:
        self.sqs.send_message(QueueUrl=self.url(destination), MessageBody=orjson.dumps({"job_id": job_id}).decode())

    def event_records(self, destination: str, *, visibility: int = 60) -> list[dict[str, str]]:
        """The visible messages of a queue (up to 10) as the records a Lambda SQS event source delivers: received
        with `visibility` as their lease, never deleted here (Lambda deletes those not reported failed)."""
        url = self.url(destination)
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility)
        return [
            {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "eventSourceARN": arn}
            for m in answer.get("Messages", [])
        ]


@pytest.fixture
def queues(options: AwsOptions) -> Queues:
    return Queues(options)
