"""The inbox queue's SQS batches: the same worker as every profile (`Worker.handle`), claims made from the event
source's messages instead of a claim call, and a partial batch response.

A message is deleted by Lambda only when the worker settled its delivery for good (processed, or failed for good:
its outcome is committed). A retry keeps the message: the inbox has already moved its visibility to the retry
time, and it is reported as failed so that Lambda does not delete it; so is every message whose outcome could not
be recorded (it comes back when its visibility timeout ends: at least once). A store that is down fails the whole
invocation, which the function's error alarm sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ghingest.app.aws_lambda.container import aws_part, current, failures
from ghingest.app.aws_lambda.observe import METRICS, count
from ghingest.app.runtime import Runtime
from ghingest.app.worker import Worker
from ghingest.ports import Claimed, Settle


class EventSourceInbox(Protocol):
    """An inbox whose deliveries also arrive as an SQS event source's messages (the AWS inbox)."""

    async def adopt(self, records: Sequence[Mapping[str, Any]]) -> Sequence[Claimed]: ...

    def message_id(self, handle: object) -> str: ...


async def process_batch(runtime: Runtime, worker: Worker, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    inbox: EventSourceInbox = aws_part(runtime, "inbox", "adopt")
    claimed = await inbox.adopt(records)
    settled = {str(record["messageId"]): False for record in records}
    adopted = {inbox.message_id(claim.handle) for claim in claimed}
    for message_id in settled:
        if message_id not in adopted:  # nothing to process (its delivery is gone): nothing to keep
            settled[message_id] = True
    settlements = await worker.handle(claimed) if claimed else []
    for settlement in settlements:
        if settlement.outcome is not Settle.RETRY:
            settled[inbox.message_id(settlement.handle)] = True
    for outcome, name in (
        (Settle.DONE, "DeliveriesProcessed"),
        (Settle.RETRY, "DeliveriesRetried"),
        (Settle.FAILED, "DeliveriesFailed"),
    ):
        count(name, sum(1 for s in settlements if s.outcome is outcome))
    count("DeliveriesNotRecorded", len(claimed) - len(settlements))
    return failures(settled)


@METRICS.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    container = current()
    worker = container.built("worker", Runtime.worker)
    return container.run(process_batch(container.runtime(), worker, event.get("Records", [])))
