"""Between the receiver and the rejected-requests log (`ports.RejectionLog`): the receiver `note`s each refusal
synchronously (O(1), no await, no I/O: `core.rejections.Aggregator`), and `run` writes what is pending once a
`interval` (and once more when stopping), so that a flood of bad requests costs the store one small batch a second
and the good requests' acknowledgements nothing. A batch the store refuses is kept for the next flush (within the
aggregator's bound: past it, rejections are counted in `ghingest_rejections_unrecorded_total` only).

Where no task runs between requests (a Lambda function: one invocation is one request), the handler awaits `flush`
itself after the response is made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.core.errors import StoreUnavailable
from ghingest.core.rejections import Aggregator, Reason, observe
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.rejections import MAX_ROWS, RETENTION_SECONDS, RejectionLog

FLUSH_INTERVAL = 1.0  # seconds


class RejectionRecorder:
    def __init__(
        self,
        log: RejectionLog,
        *,
        metrics: Metrics,
        clock: Clock = SYSTEM_CLOCK,
        interval: float = FLUSH_INTERVAL,
        aggregator: Aggregator | None = None,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        self._log = log
        self._metrics = metrics
        self._clock = clock
        self._interval = interval
        self._aggregator = aggregator or Aggregator()
        self._keep_rows = keep_rows
        self._keep_seconds = keep_seconds
        self._logger = get_logger("ghingest.rejections")

    @property
    def pending(self) -> int:
        """Buckets not written yet."""
        return len(self._aggregator)

    def note(self, reason: Reason, headers: Mapping[str, str], client: str | None) -> bool:
        """Count one refused request (its lower-cased headers; the client's address); True when it opened a bucket
        (the receiver logs those only)."""
        self._metrics.rejected_requests.labels(reason.value).inc()
        dropped = self._aggregator.dropped
        opened = self._aggregator.add(observe(reason, headers, client=client, at=self._clock.now()))
        if self._aggregator.dropped != dropped:
            self._metrics.rejections_unrecorded.inc()
        return opened

    async def flush(self) -> None:
        """Write what is pending (nothing when nothing is); a batch the store refuses is kept for the next flush."""
        buckets = self._aggregator.drain()
        if not buckets:
            return
        try:
            await self._log.record(buckets, keep_rows=self._keep_rows, keep_seconds=self._keep_seconds)
        except StoreUnavailable as exc:
            dropped = self._aggregator.dropped
            self._aggregator.restore(buckets)
            self._metrics.rejections_unrecorded.inc(self._aggregator.dropped - dropped)
            self._logger.warning("rejections.unflushed", buckets=len(buckets), reason=str(exc)[:200])

    async def run(self, stop: asyncio.Event) -> None:
        """Flush once an interval until `stop`, then once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            try:
                await self.flush()
            except Exception:  # a bug must not end the recording for good: logged, and the next flush tries again
                self._logger.exception("rejections.flush_failed")
