"""The schedule's sweep: what was committed but never sent on is sent now.

- A delivery whose item was written but whose SNS notice was never accepted (the receiver crashed, or SNS failed
  and GitHub never redelivered) is still marked unpublished `GHINGEST_AWS_SWEEP_AFTER` seconds after its receipt:
  its notice is published again. Processing is idempotent, so a notice published twice costs one extra no-op.
- A forward job whose notice never reached the forwards topic (the processor committed, then failed to publish)
  is dispatched again.
"""

from __future__ import annotations

from typing import Any, Protocol

from ghingest.app.aws_lambda.container import aws_part, current
from ghingest.app.aws_lambda.observe import METRICS, count
from ghingest.app.logs import get_logger
from ghingest.app.runtime import Runtime


class Sweepable(Protocol):
    async def sweep(self, *, older_than: float) -> int:
        """Send on what is still unsent `older_than` seconds after it was committed; return how many."""
        ...


async def sweep(runtime: Runtime) -> dict[str, int]:
    older_than = runtime.settings.aws_sweep_after
    counts: dict[str, int] = {}
    for name, port in (("deliveries", "inbox"), ("forward_jobs", "forwards")):
        sweepable: Sweepable = aws_part(runtime, port, "sweep")
        counts[name] = await sweepable.sweep(older_than=older_than)
    get_logger("ghingest.sweeper").info("sweep.done", **counts)
    count("DeliveriesRepublished", counts["deliveries"])
    count("ForwardJobsRedispatched", counts["forward_jobs"])
    return counts


@METRICS.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    container = current()
    return container.run(sweep(container.runtime()))
