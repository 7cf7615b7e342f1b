"""The forwarder: delivers forward jobs to their destinations, at least once, recording every attempt.

One pump per configured destination claims that destination's due jobs — never more than its `concurrency`
in flight — and runs each attempt as its own task under the destination's `timeout`, over an HTTP client (a
connection pool) of its own. A slow or dead destination therefore only ever occupies its own slots: the
others are claimed and sent as if it did not exist.

Each attempt's answer is classified (`core.forward_states.classify`) and the job moves on by the destination's
retry policy (`decide`): delivered, due again at a backed-off time (honouring `Retry-After`), or dead. The decision
is persisted; nothing sleeps waiting for a retry. A job claimed by a process that died is due again when its lease
ends, or at once when the forwarder starts (`release_leases`: one forwarder per database file).
Logs never carry a secret or a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jinja2

from ghingest.app import http1
from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.core.forward_states import ForwardStatus, Verdict, classify, decide, parse_retry_after
from ghingest.core.routing import Destination, ForwardBuildError, RouteTable, build_forward
from ghingest.ports import AttemptResult, ForwardJob, ForwardQueue

EXCERPT_CHARS = 500
_EXCERPT_BYTES = 2048
LEASE_MARGIN = 30.0  # a claimed job is hidden for twice the destination's timeout plus this (held, then in flight)


class Forwarder:
    def __init__(
        self,
        queue: ForwardQueue,
        routes: Callable[[], RouteTable],
        *,
        metrics: Metrics,
        poll_interval: float = 0.5,
        supervise_interval: float = 1.0,
    ) -> None:
        self._queue = queue
        self._routes = routes
        self._metrics = metrics
        self._poll_interval = poll_interval
        self._supervise_interval = supervise_interval
        self._log = get_logger("ghingest.forwarder")

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; follow route reloads (new destinations get a pump, removed ones stop)."""
        try:
            released = await self._queue.release_leases()
            if released:
                self._log.info("forward.leases_released", jobs=released)
        except Exception:
            self._log.exception("forward.release_error")
        pumps: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                for name in self._routes().destinations:
                    if name not in pumps or pumps[name].done():
                        pumps[name] = asyncio.create_task(self._pump(name, stop), name=f"forward:{name}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._supervise_interval)
        finally:
            if pumps:
                await asyncio.wait(pumps.values(), timeout=15)
            for task in pumps.values():
                task.cancel()

    async def _pump(self, name: str, stop: asyncio.Event) -> None:
        """Keep `concurrency` attempts in flight for one destination. Jobs are claimed in batches (up to twice the
        concurrency is held), so that claims — each a commit — stay few however fast the destination answers."""
        in_flight: set[asyncio.Task[None]] = set()
        held: deque[ForwardJob] = deque()
        slot_freed = asyncio.Event()
        exhausted = False  # the last claim got fewer jobs than asked: claim again on new work or after the poll
        work: asyncio.Future[None] | None = None
        stopping = asyncio.ensure_future(stop.wait())

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slot_freed.set()

        first = self._routes().destinations.get(name)
        if first is None:
            return
        concurrency, url = first.concurrency, first.url
        # Each destination has its own keep-alive connections, as many as its concurrency: a slow or dead destination
        # never holds a connection another one needs. No proxy from the environment is used.
        origin = http1.Origin(url, size=concurrency, max_body=_EXCERPT_BYTES)
        target = _target_of(url)
        try:
            while not stop.is_set():
                destination = self._routes().destinations.get(name)
                if destination is None:
                    break  # removed by a reload: its jobs stay queued until it comes back or is replayed elsewhere
                if (destination.concurrency, destination.url) != (concurrency, url):
                    break  # changed by a reload: the supervisor starts a pump with the new settings
                if work is None or work.done():
                    exhausted = exhausted and work is None
                    work = asyncio.ensure_future(self._queue.wait_for_work(self._poll_interval))
                slot_freed.clear()
                while held and len(in_flight) < destination.concurrency:
                    task = asyncio.create_task(self._attempt(origin, target, destination, held.popleft()))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                holding = len(held) + len(in_flight)
                if not exhausted and holding <= destination.concurrency:
                    want = 2 * destination.concurrency - holding
                    try:
                        jobs = await self._queue.claim(
                            name, limit=want, lease_seconds=2 * destination.timeout + LEASE_MARGIN
                        )
                    except Exception:
                        self._log.exception("forward.claim_error", destination=name)
                        jobs = []
                    held.extend(jobs)
                    exhausted = len(jobs) < want
                    if jobs:
                        continue  # start them now
                freed = asyncio.ensure_future(slot_freed.wait())
                waiters: set[asyncio.Future[Any]] = {work, freed, stopping}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                freed.cancel()
        finally:
            if work is not None:
                work.cancel()
            stopping.cancel()
            if in_flight:
                await asyncio.wait(in_flight, timeout=destination_timeout(self._routes(), name) + 1)
            for task in in_flight:
                task.cancel()
            origin.close()
            if held:  # claimed but not started: due again now, for the next pump (or the next start)
                try:
                    await self._queue.release_leases([job.id for job in held])
                except Exception:
                    self._log.exception("forward.release_error", destination=name)

    async def _attempt(self, origin: http1.Origin, target: str, destination: Destination, job: ForwardJob) -> None:
        started_at = time.time()
        t0 = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        retry_after: float | None = None
        verdict: Verdict
        try:
            request = build_forward(
                destination,
                delivery_id=job.delivery_id,
                event=job.event,
                content_kind=job.content_kind,
                headers=job.headers,
                body=job.body,
                template=self._template_of(job),
            )
        except ForwardBuildError as exc:
            error, verdict = str(exc), Verdict.PERMANENT
        else:
            try:
                async with asyncio.timeout(destination.timeout):
                    answer = await origin.post(target, request.headers, request.body)
                status_code = answer.status
                retry_after = parse_retry_after(answer.headers.get("retry-after"), now=time.time())
                excerpt = answer.body.decode("utf-8", errors="replace").strip()[:EXCERPT_CHARS] or None
            except TimeoutError:
                error = f"timeout after {destination.timeout:g} s"
            except http1.HttpFailure as exc:
                error = f"{exc.__class__.__name__}: {exc}"[:300]
            except OSError as exc:
                error = f"{exc.__class__.__name__}: {exc}"[:300]
            verdict = classify(status_code)
        latency = time.perf_counter() - t0
        attempts = job.attempts + 1
        decision = decide(
            verdict,
            policy=destination.retry,
            attempts=attempts,
            now=time.time(),
            first_attempt_at=job.first_attempt_at or started_at,
            retry_after=retry_after,
        )
        result = AttemptResult(
            job_id=job.id,
            destination=destination.name,
            started_at=started_at,
            latency=latency,
            status_code=status_code,
            error=error,
            response_excerpt=excerpt,
            next_status=decision.status,
            next_attempt_at=decision.next_attempt_at,
        )
        self._observe(job, result, verdict)
        try:
            await self._queue.record_attempts([result])
        except Exception:  # the job stays leased and is attempted again when its lease ends: at least once
            self._log.exception("forward.record_error", delivery_id=job.delivery_id, destination=destination.name)

    def _template_of(self, job: ForwardJob) -> jinja2.Template | None:
        if job.route is None:
            return None
        route = self._routes().routes_by_name.get(job.route)
        if route is None:
            raise ForwardBuildError(f"route {job.route!r} is no longer configured")
        return route.template

    def _observe(self, job: ForwardJob, result: AttemptResult, verdict: Verdict) -> None:
        outcome = {ForwardStatus.DELIVERED: "delivered", ForwardStatus.RETRY: "retry"}.get(result.next_status, "dead")
        self._metrics.forwards.labels(result.destination, outcome).inc()
        self._metrics.forward_attempt_seconds.labels(result.destination).observe(result.latency)
        if job.attempts == 0 and not job.replay:
            self._metrics.forward_receipt_to_attempt.observe(max(0.0, result.started_at - job.received_at))
        fields = {
            "delivery_id": job.delivery_id,
            "destination": result.destination,
            "attempt": job.attempts + 1,
            "replay": job.replay,
            "status_code": result.status_code,
            "outcome": outcome,
            "latency_ms": round(result.latency * 1000, 3),
        }
        if verdict is Verdict.DELIVERED:
            self._log.debug("forward.delivered", **fields)
        else:
            self._log.warning("forward.failed", error=result.error, **fields)


def destination_timeout(table: RouteTable, name: str) -> float:
    destination = table.destinations.get(name)
    return 10.0 if destination is None else destination.timeout


def _target_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
