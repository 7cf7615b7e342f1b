"""The forwarder: delivers forward jobs to their destinations, at least once, recording every attempt.

One pump per configured destination claims that destination's due jobs — never more than its `concurrency`
in flight — and runs each attempt as its own task under the destination's `timeout`, over one shared HTTP client
whose pool is not limited globally. A slow or dead destination therefore only ever occupies its own slots: the
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
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import jinja2

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.core.forward_states import ForwardStatus, Verdict, classify, decide, parse_retry_after
from ghingest.core.routing import Destination, ForwardBuildError, RouteTable, build_forward
from ghingest.ports import AttemptResult, ForwardJob, ForwardQueue

EXCERPT_CHARS = 500
_EXCERPT_BYTES = 2048
LEASE_MARGIN = 30.0  # a claimed job is hidden for the destination's timeout plus this


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
        self._client: httpx.AsyncClient | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; follow route reloads (new destinations get a pump, removed ones stop)."""
        # No global pool limit: per-destination concurrency bounds connections. Proxies from the environment are
        # not used, so that what is forwarded where does not depend on the process's environment.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False, trust_env=False) as client:
            self._client = client
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
                self._client = None

    async def _pump(self, name: str, stop: asyncio.Event) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        slot_freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            slot_freed.set()

        try:
            while not stop.is_set():
                destination = self._routes().destinations.get(name)
                if destination is None:
                    break  # removed by a reload: its jobs stay queued until it comes back or is replayed elsewhere
                slot_freed.clear()
                free = destination.concurrency - len(in_flight)
                claimed = 0
                if free > 0:
                    try:
                        jobs = await self._queue.claim(
                            name, limit=free, lease_seconds=destination.timeout + LEASE_MARGIN
                        )
                    except Exception:
                        self._log.exception("forward.claim_error", destination=name)
                        jobs = []
                    for job in jobs:
                        task = asyncio.create_task(self._attempt(destination, job))
                        in_flight.add(task)
                        task.add_done_callback(finished)
                    claimed = len(jobs)
                    if claimed == free:
                        continue  # there may be more due: claim again as soon as a slot is free
                await _first(self._queue.wait_for_work(self._poll_interval), slot_freed.wait(), stop.wait(), limit=None)
        finally:
            if in_flight:
                await asyncio.wait(in_flight, timeout=destination_timeout(self._routes(), name) + 1)
            for task in in_flight:
                task.cancel()

    async def _attempt(self, destination: Destination, job: ForwardJob) -> None:
        client = self._client
        assert client is not None
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
                    async with client.stream(
                        "POST", request.url, content=request.body, headers=dict(request.headers),
                        timeout=destination.timeout,
                    ) as response:  # fmt: skip
                        status_code = response.status_code
                        retry_after = parse_retry_after(response.headers.get("retry-after"), now=time.time())
                        excerpt = await _excerpt(response)
            except (TimeoutError, httpx.TimeoutException):
                error = f"timeout after {destination.timeout:g} s"
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
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


async def _excerpt(response: httpx.Response) -> str | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _EXCERPT_BYTES:
            break
    text = b"".join(chunks)[:_EXCERPT_BYTES].decode("utf-8", errors="replace").strip()
    return text[:EXCERPT_CHARS] or None


async def _first(*waits: Coroutine[Any, Any, Any], limit: float | None) -> None:
    """Wait until the first of `waits` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
