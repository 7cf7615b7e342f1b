"""The worker: claims recorded deliveries, runs the pure processor, and records outcomes in one transaction.

At least once: a delivery is claimed with a lease, and only the store's commit marks it processed, so a crash
before that commit leaves it to be claimed again when its lease (`GHINGEST_WORKER_LEASE_SECONDS`) expires.
A delivery whose processing raises is retried with backoff, then marked `failed` with its error; it never blocks
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.core.errors import InvalidPayload, PayloadMismatch
from ghingest.core.processing import Processed, StoredDelivery, process, tolerant_event_record
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import EMPTY_TABLE, RouteTable
from ghingest.core.time import now
from ghingest.ports import Inbox, Outcome, Store

PERMANENT_ERRORS = (InvalidPayload, PayloadMismatch)


class Worker:
    def __init__(
        self,
        inbox: Inbox,
        store: Store,
        *,
        metrics: Metrics,
        retry: RetryPolicy,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        lease_seconds: float = 15.0,
        routes: Callable[[], RouteTable] = lambda: EMPTY_TABLE,
        processor: Callable[[StoredDelivery], Processed] = process,
    ) -> None:
        self._inbox = inbox
        self._store = store
        self._metrics = metrics
        self._retry = retry
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease_seconds = lease_seconds
        self._processor = processor
        self._routes = routes  # the route table in force: processed deliveries get their forward jobs (outbox)
        self._log = get_logger("ghingest.worker")

    async def run(self, stop: asyncio.Event) -> None:
        """Process until `stop` is set."""
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:
                self._log.exception("worker.batch_error")
                done = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._poll_interval)
            if done == 0:
                waiter = asyncio.ensure_future(self._inbox.wait_for_work(self._poll_interval))
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                for task in (waiter, stopper):
                    task.cancel()
            else:
                await asyncio.sleep(0)  # let the receiver's requests in between batches

    async def run_once(self) -> int:
        """Claim and process one batch; return its size."""
        batch = await self._inbox.claim(limit=self._batch_size, lease_seconds=self._lease_seconds)
        if not batch:
            return 0
        at = now()
        table = self._routes()
        outcomes = [self._outcome(delivery, at, table) for delivery in batch]
        try:
            await self._store.record_outcomes(outcomes, now=at)
        except Exception:
            self._log.exception("worker.record_error", batch=len(outcomes))
            await self._record_one_by_one(outcomes, at)
        self._observe(outcomes, at)
        return len(batch)

    async def drain(self, *, max_batches: int = 1_000_000) -> int:
        """Process until nothing is due (CLI `reprocess`, tests)."""
        total = 0
        for _ in range(max_batches):
            done = await self.run_once()
            if done == 0:
                break
            total += done
        return total

    def _outcome(self, delivery: StoredDelivery, at: float, table: RouteTable = EMPTY_TABLE) -> Outcome:
        try:
            processed = self._processor(delivery)
            event = processed.event
            forwards = table.match(
                event=event.event, action=event.action, repository=event.repository, payload=processed.payload
            )
            return Outcome(delivery=delivery, processed=processed, forwards=forwards)
        except PERMANENT_ERRORS as exc:
            return self._failure(delivery, f"{exc.__class__.__name__}: {exc}", at, permanent=True)
        except Exception as exc:
            return self._failure(delivery, f"{exc.__class__.__name__}: {exc}"[:500], at, permanent=False)

    def _failure(self, delivery: StoredDelivery, error: str, at: float, *, permanent: bool) -> Outcome:
        retry_at = None if permanent else self._retry.next_attempt_at(attempts=delivery.attempts + 1, now=at)
        if retry_at is not None:
            return Outcome(delivery=delivery, error=error, retry_at=retry_at)
        return Outcome(delivery=delivery, error=error, fallback_event=tolerant_event_record(delivery))

    async def _record_one_by_one(self, outcomes: Sequence[Outcome], at: float) -> None:
        for outcome in outcomes:
            try:
                await self._store.record_outcomes([outcome], now=at)
            except Exception as exc:
                failure = self._failure(outcome.delivery, f"recording failed: {exc.__class__.__name__}", at,
                                        permanent=False)  # fmt: skip
                with contextlib.suppress(Exception):
                    await self._store.record_outcomes([failure], now=at)

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
            self._metrics.deliveries.labels(delivery.event, result).inc()
            self._log.info(
                "delivery.processed" if result == "processed" else "delivery.failed",
                delivery_id=delivery.delivery_id,
                github_event=delivery.event,
                action=action,
                outcome=result,
                attempts=delivery.attempts + 1,
                latency_ms=round(lag * 1000, 3),
                error=outcome.error,
            )
