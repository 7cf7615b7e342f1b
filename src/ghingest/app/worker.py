"""The worker: claims recorded deliveries, runs the pure processor, and records outcomes in one transaction.

At least once: a delivery is claimed with a lease; the store commits its outcome, and only then does the inbox
settle it (done, retry at a time, failed), so a crash before either leaves it to be claimed again when its lease
(`GHINGEST_WORKER_LEASE_SECONDS`) expires, and processing it again changes nothing (the store is idempotent).

**A delivery's outcome is recorded whatever it contains, and one delivery never holds back another.** Processing
never raises (`core.processing.attempt`): a delivery that cannot be processed is retried with backoff when the
fault may be transient, then marked `failed` with its error. A batch whose recording fails for any reason but an
unavailable store is recorded one delivery at a time; a delivery whose own outcome cannot be recorded is recorded
as a failure, and at last as a failure that takes nothing from its payload. Metrics and log lines count only what
was recorded.

Claims are bounded by count and by bytes (`GHINGEST_WORKER_BATCH_BYTES`), and large deliveries are processed in a
worker process (`Offload`): a backlog of 25 MiB payloads neither exhausts memory nor stalls the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.offload import Offload
from ghingest.core.errors import StoreUnavailable
from ghingest.core.events import EventRecord, action_label, event_label
from ghingest.core.processing import (
    Processed,
    Processor,
    StoredDelivery,
    Unprocessable,
    attempt,
    bare_event_record,
    describe,
    loggable_error,
    process,
)
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import EMPTY_TABLE, RouteMatcher, RouteTable
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.inbox import Claimed, Inbox, Settle, Settlement
from ghingest.ports.store import Outcome, Store

BATCH_BYTES = 16 * 1024 * 1024
YIELD_EVERY = 0.005  # seconds of inline processing after which the event loop gets a turn
RECORDING_FAILED = "recording the outcome failed"
EXHAUSTED = "claimed as often as the inbox allows without an outcome (did processing crash the worker?)"


class Worker:
    def __init__(
        self,
        inbox: Inbox,
        store: Store,
        *,
        metrics: Metrics,
        retry: RetryPolicy,
        batch_size: int = 200,
        batch_bytes: int = BATCH_BYTES,
        poll_interval: float = 0.5,
        lease_seconds: float = 15.0,
        routes: Callable[[], RouteTable] = lambda: EMPTY_TABLE,
        processor: Processor = process,
        offload: Offload | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._inbox = inbox
        self._store = store
        self._metrics = metrics
        self._retry = retry
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._processor = processor
        self._offload = offload or Offload()
        self._routes = routes  # the route table in force: processed deliveries get their forward jobs (outbox)
        self._log = get_logger("ghingest.worker")

    async def run(self, stop: asyncio.Event) -> None:
        """Process until `stop` is set."""
        try:
            while not stop.is_set():
                try:
                    done = await self.run_once()
                except StoreUnavailable as exc:
                    self._log.warning("worker.store_unavailable", reason=str(exc)[:200])
                    done = 0
                except Exception as exc:
                    self._log.error("worker.batch_error", error=exc.__class__.__name__)
                    done = 0
                if done == 0:
                    waiter = asyncio.ensure_future(self._inbox.wait_for_work(self._poll_interval))
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    for task in (waiter, stopper):
                        task.cancel()
                else:
                    await asyncio.sleep(0)  # let the receiver's requests in between batches
        finally:
            self._offload.close()

    async def run_once(self) -> int:
        """Claim and process one batch; return its size."""
        claimed = await self.claim()
        if claimed:
            await self.handle(claimed)
        return len(claimed)

    async def claim(self) -> Sequence[Claimed]:
        """The next batch due, bounded by count and bytes, leased to this worker (for `handle`)."""
        return await self._inbox.claim(
            limit=self._batch_size, max_bytes=self._batch_bytes, lease_seconds=self._lease_seconds
        )

    async def handle(self, claimed: Sequence[Claimed]) -> list[Settlement]:
        """Process claimed deliveries, record their outcomes and settle what was recorded; return the settlements
        (a claim missing from them was not recorded: it is claimed again when its lease runs out). A Lambda
        function's batch comes here directly, its claims made from the event source's messages."""
        at = self._clock.now()
        exhausted = [
            Outcome(delivery=claim.delivery, error=EXHAUSTED, fallback_event=bare_event_record(claim.delivery))
            for claim in claimed
            if claim.exhausted
        ]
        batch = [claim.delivery for claim in claimed if not claim.exhausted]
        results = await self._attempt_all(batch, self._routes().matcher)
        at = self._clock.now()
        outcomes = exhausted + [
            self._outcome(delivery, result, at) for delivery, result in zip(batch, results, strict=True)
        ]
        recorded = await self._record(outcomes, at)
        handles = {id(claim.delivery): claim.handle for claim in claimed}
        settlements = [_settlement(handles[id(o.delivery)], o) for o in recorded]
        await self._inbox.settle(settlements)
        self._observe(recorded, at)
        return settlements

    async def drain(self, *, max_batches: int = 1_000_000) -> int:
        """Process until nothing is due (CLI `reprocess`, tests)."""
        total = 0
        for _ in range(max_batches):
            done = await self.run_once()
            if done == 0:
                break
            total += done
        return total

    # --- processing -----------------------------------------------------------------------------------------------

    async def _attempt_all(
        self, batch: Sequence[StoredDelivery], routes: RouteMatcher
    ) -> list[Processed | Unprocessable]:
        """Small deliveries inline, giving the event loop a turn every `YIELD_EVERY` seconds; large ones in the
        worker process, all at once."""
        results: list[Processed | Unprocessable | None] = [None] * len(batch)
        offloaded: dict[int, asyncio.Future[Processed | Unprocessable]] = {}
        slice_started = time.perf_counter()
        for index, delivery in enumerate(batch):
            size = len(delivery.body)
            if not self._offload.inline(size):
                offloaded[index] = asyncio.ensure_future(
                    self._offload.run(size, attempt, delivery, routes, self._processor)
                )
                continue
            results[index] = attempt(delivery, routes, self._processor)
            if time.perf_counter() - slice_started > YIELD_EVERY:
                await asyncio.sleep(0)
                slice_started = time.perf_counter()
        for index, future in offloaded.items():
            try:
                results[index] = await future
            except Exception as exc:  # the worker process died, or the call could not be sent to it
                fallback = bare_event_record(batch[index])
                results[index] = Unprocessable(describe(exc), permanent=False, fallback_event=fallback)
        return [result for result in results if result is not None]

    def _outcome(self, delivery: StoredDelivery, result: Processed | Unprocessable, at: float) -> Outcome:
        if isinstance(result, Processed):
            return Outcome(delivery=delivery, processed=result)
        return self._failure(delivery, result.error, at, permanent=result.permanent, fallback=result.fallback_event)

    def _failure(
        self, delivery: StoredDelivery, error: str, at: float, *, permanent: bool, fallback: EventRecord
    ) -> Outcome:
        retry_at = None if permanent else self._retry.next_attempt_at(attempts=delivery.attempts + 1, now=at)
        if retry_at is not None:
            return Outcome(delivery=delivery, error=error, retry_at=retry_at)
        return Outcome(delivery=delivery, error=error, fallback_event=fallback)

    # --- recording ------------------------------------------------------------------------------------------------

    async def _record(self, outcomes: Sequence[Outcome], at: float) -> list[Outcome]:
        """Record the batch, else each outcome alone; return what was recorded. An unavailable store records
        nothing: the leases run out and the deliveries are claimed again."""
        try:
            await self._store.record_outcomes(outcomes)
            return list(outcomes)
        except StoreUnavailable:
            raise
        except Exception as exc:
            self._log.error("worker.record_error", batch=len(outcomes), error=exc.__class__.__name__)
        recorded = []
        for outcome in outcomes:
            alone = await self._record_alone(outcome, at)
            if alone is not None:
                recorded.append(alone)
        return recorded

    async def _record_alone(self, outcome: Outcome, at: float) -> Outcome | None:
        """Record one outcome. If that fails, record the delivery as failed instead (retried while the policy
        allows), and if even that fails, as failed for good with an event record that takes nothing from the
        payload. None when nothing could be recorded (the lease runs out and the delivery is claimed again)."""
        delivery = outcome.delivery
        try:
            await self._store.record_outcomes([outcome])
            return outcome
        except StoreUnavailable:
            raise
        except Exception as exc:
            error = f"{RECORDING_FAILED}: {exc.__class__.__name__}"
        first = self._failure(delivery, error, at, permanent=False, fallback=bare_event_record(delivery))
        fallbacks = [first]
        if first.retry_at is not None:
            fallbacks.append(Outcome(delivery=delivery, error=error, fallback_event=bare_event_record(delivery)))
        for candidate in fallbacks:
            try:
                await self._store.record_outcomes([candidate])
                return candidate
            except StoreUnavailable:
                raise
            except Exception as exc:
                self._log.error("worker.record_error", delivery_id=delivery.delivery_id, error=exc.__class__.__name__)
        return None

    # --- observing ------------------------------------------------------------------------------------------------

    def _observe(self, outcomes: Sequence[Outcome], at: float) -> None:
        for outcome in outcomes:
            delivery = outcome.delivery
            lag = max(0.0, at - delivery.received_at)
            if outcome.processed is not None:
                result, action = "processed", outcome.processed.event.action
                self._metrics.processing_lag.observe(lag)
            else:
                result = "retried" if outcome.retry_at is not None else "failed"
                action = outcome.fallback_event.action if outcome.fallback_event else None
                self._metrics.processing_failures.labels("false" if outcome.retry_at else "true").inc()
            self._metrics.deliveries.labels(event_label(delivery.event), result).inc()
            self._log.info(
                "delivery.processed" if result == "processed" else "delivery.failed",
                delivery_id=delivery.delivery_id,
                github_event=delivery.event,
                action=action_label(delivery.event, action),
                outcome=result,
                attempts=delivery.attempts + 1,
                latency_ms=round(lag * 1000, 3),
                error=loggable_error(outcome.error),
            )


def _settlement(handle: object, outcome: Outcome) -> Settlement:
    """How the inbox settles a delivery whose outcome the store recorded."""
    if outcome.processed is not None:
        return Settlement(handle, Settle.DONE)
    if outcome.retry_at is not None:
        return Settlement(handle, Settle.RETRY, retry_at=outcome.retry_at)
    return Settlement(handle, Settle.FAILED)
