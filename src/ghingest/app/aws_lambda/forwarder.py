"""Every destination's SQS queue: the same forwarder as every profile (`Forwarder.deliver`), its jobs claimed from
the event source's messages (a notice per forward job), and a partial batch response.

An attempt that delivered, or that dead-lettered its job (the queue sends the notice to the destination's DLQ),
lets Lambda delete the message. A job due again later keeps its message, whose visibility the queue has moved to the
retry time; a job whose attempt could not be recorded keeps it too, and is attempted again when it reappears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ghingest.app.aws_lambda.container import aws_part, current, failures
from ghingest.app.aws_lambda.observe import METRICS, count
from ghingest.app.forwarder import Forwarder
from ghingest.app.runtime import Runtime
from ghingest.ports import ForwardJob


class EventSourceForwardQueue(Protocol):
    """A forward queue whose jobs also arrive as an SQS event source's messages (the AWS forward queue)."""

    async def adopt(self, records: Sequence[Mapping[str, Any]]) -> Sequence[ForwardJob]: ...

    def settled(self, message_id: str) -> bool:
        """Whether the message may be deleted (its job delivered, dead or never to be attempted)."""
        ...


async def forward_batch(runtime: Runtime, forwarder: Forwarder, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    queue: EventSourceForwardQueue = aws_part(runtime, "forwards", "adopt")
    jobs = await queue.adopt(records)
    if jobs:
        await forwarder.deliver(jobs)
    response = failures({str(r["messageId"]): queue.settled(str(r["messageId"])) for r in records})
    kept = len(response["batchItemFailures"])
    count("ForwardNoticesSettled", len(records) - kept)
    count("ForwardNoticesKept", kept)
    return response


@METRICS.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    container = current()
    forwarder = container.built("forwarder", Runtime.forwarder)
    return container.run(forward_batch(container.runtime(), forwarder, event.get("Records", [])))
