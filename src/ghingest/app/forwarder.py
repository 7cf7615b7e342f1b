"""The forwarder: delivers forward jobs to their destinations, at least once, recording every attempt.

One pump per configured destination claims that destination's due jobs — never more than its `concurrency`
in flight — and runs each attempt as its own task under the destination's `timeout`, over an HTTP client (a
connection pool) of its own. A slow or dead destination therefore only ever occupies its own slots: the
others are claimed and sent as if it did not exist.

Each attempt's answer is classified (`core.forward_states.classify`) and the job moves on by the destination's
retry policy (`decide`): delivered, due again at a backed-off time (honouring `Retry-After`), or dead. The decision
is persisted; nothing sleeps waiting for a retry. Every attempt ends in a recorded outcome: an exception nobody
foresaw, anywhere from building the request to deciding, is recorded as that attempt's error and treated as transient
(so the policy still dead-letters the job in the end). Only when recording itself fails does the job stay leased until
its lease ends, and then it is attempted again; such failures are logged once per run of them, not once per attempt.
A job claimed by a process that died is due again when its lease ends, or at once when the forwarder starts
(`ForwardQueue.recover`: a backend with one forwarder per store releases every lease left; on a shared store the
leases simply run out). Logs never carry a secret or a body.

The HTTP client is a `ForwardTransport` (`app/forward_transport.py`) built per destination by the factory the
forwarder is given: the real one by default, a `MockTransport` in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ghingest.app import forward_client
from ghingest.app.forward_transport import (
    Answer,
    ForwardTransport,
    TransportError,
    TransportFactory,
    TransportOptions,
)
from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.offload import Offload
from ghingest.core.forward_states import Decision, ForwardStatus, Verdict, classify, decide, parse_retry_after
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import (
    Destination,
    ForwardBuildError,
    OutgoingRequest,
    RouteTable,
    build_forward,
    build_forward_compiling,
)
from ghingest.ports import AttemptResult, ForwardJob, ForwardQueue

EXCERPT_CHARS = 500
ERROR_CHARS = 300
_EXCERPT_BYTES = 2048
LEASE_MARGIN = 30.0  # a claimed job is hidden for twice the destination's timeout plus this (held, then in flight)
RECORD_TIMEOUT = LEASE_MARGIN  # recording an attempt that takes longer is given up (the job's lease then runs out)
REPEAT_LOG_INTERVAL = 60.0  # while recording keeps failing, one summary line per this many seconds

DEFAULT_TRANSPORT: TransportFactory = forward_client.transport


class Forwarder:
    def __init__(
        self,
        queue: ForwardQueue,
        routes: Callable[[], RouteTable],
        *,
        metrics: Metrics,
        poll_interval: float = 0.5,
        supervise_interval: float = 1.0,
        transport_factory: TransportFactory = DEFAULT_TRANSPORT,
        offload: Offload | None = None,
    ) -> None:
        self._queue = queue
        self._offload = offload or Offload()  # builds (parses, renders, signs) large forwards off the event loop
        self._routes = routes
        self._metrics = metrics
        self._poll_interval = poll_interval
        self._supervise_interval = supervise_interval
        self._transport_factory = transport_factory
        self._log = get_logger("ghingest.forwarder")
        self._record_failures = _FailureRun(self._log, "forward.record_error")
        self.paused: frozenset[str] = frozenset()  # destinations paused, as of the last look (`_follow_pauses`)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; follow route reloads (new destinations get a pump, removed ones stop)."""
        try:
            released = await self._queue.recover()
            if released:
                self._log.info("forward.leases_released", jobs=released)
        except Exception:
            self._log.exception("forward.release_error")
        pumps: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                await self._follow_pauses()
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
            self._offload.close()

    async def _follow_pauses(self) -> None:
        """Look at which destinations are paused (every `supervise_interval`): their pumps hand back the jobs they
        hold and claim nothing (a claim would get nothing either: the queue refuses a paused destination's jobs).
        When the look fails, the last answer stands."""
        try:
            paused = frozenset(p.destination for p in await self._queue.paused())
        except Exception:
            self._log.exception("forward.paused_error")
            return
        for name in sorted(paused - self.paused):
            self._log.info("forward.paused", destination=name)
        for name in sorted(self.paused - paused):
            self._log.info("forward.resumed", destination=name)
        self.paused = paused

    async def deliver(self, jobs: Sequence[ForwardJob]) -> None:
        """Attempt jobs claimed elsewhere once each — a forwarder Lambda's batch, claimed from its event source —
        each destination's `concurrency` at a time, over a transport of its own; every attempt is recorded. A job
        whose destination the route table no longer has is left as claimed: it is due again when its lease ends
        (releasing it would hand it straight back to the event source, in a loop)."""
        table = self._routes()
        by_destination: dict[str, list[ForwardJob]] = {}
        for job in jobs:
            by_destination.setdefault(job.destination, []).append(job)
        for name, group in by_destination.items():
            destination = table.destinations.get(name)
            if destination is None:
                self._log.warning("forward.unknown_destination", destination=name, jobs=len(group))
            else:
                await self._deliver_to(destination, group)

    async def _deliver_to(self, destination: Destination, jobs: Sequence[ForwardJob]) -> None:
        transport = self._transport(transport_options(destination), destination.name)
        target = target_of(destination.url)
        slots = asyncio.Semaphore(destination.concurrency)

        async def attempt(job: ForwardJob) -> None:
            async with slots:
                await self._attempt(transport, target, destination, job)

        try:
            await asyncio.gather(*(attempt(job) for job in jobs))
        finally:
            try:
                await transport.close()
            except Exception:
                self._log.exception("forward.close_error", destination=destination.name)

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
        options = transport_options(first)
        # Each destination has its own keep-alive connections, as many as its concurrency: a slow or dead destination
        # never holds a connection another one needs. No proxy from the environment is used.
        transport = self._transport(options, name)
        target = target_of(first.url)
        try:
            while not stop.is_set():
                destination = self._routes().destinations.get(name)
                if destination is None:
                    break  # removed by a reload: its jobs stay queued until it comes back or is replayed elsewhere
                if transport_options(destination) != options:
                    break  # changed by a reload: the supervisor starts a pump with the new settings
                if work is None or work.done():
                    exhausted = exhausted and work is None
                    work = asyncio.ensure_future(self._queue.wait_for_work(self._poll_interval))
                slot_freed.clear()
                paused = name in self.paused
                if paused and held:  # attempts in flight finish; what is held waits with the rest of the queue
                    await self._hand_back(held, name)
                while held and len(in_flight) < destination.concurrency:
                    task = asyncio.create_task(self._attempt(transport, target, destination, held.popleft()))
                    in_flight.add(task)
                    task.add_done_callback(finished)
                holding = len(held) + len(in_flight)
                if not paused and not exhausted and holding <= destination.concurrency:
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
            try:
                await transport.close()
            except Exception:
                self._log.exception("forward.close_error", destination=name)
            if held:  # claimed but not started: due again now, for the next pump (or the next start)
                await self._hand_back(held, name)

    async def _hand_back(self, held: deque[ForwardJob], name: str) -> None:
        """Make jobs claimed but not started due again now; a failure leaves them to their leases."""
        job_ids = [job.id for job in held]
        held.clear()
        try:
            await self._queue.release(job_ids)
        except Exception:
            self._log.exception("forward.release_error", destination=name)

    def _transport(self, options: TransportOptions, name: str) -> ForwardTransport:
        """The destination's transport; one that cannot be built fails each attempt with the reason (recorded)."""
        try:
            return self._transport_factory(options)
        except Exception as exc:
            self._log.exception("forward.transport_error", destination=name)
            return _Unusable(describe(exc, secrets=secrets_of(options)))

    async def _attempt(
        self, transport: ForwardTransport, target: str, destination: Destination, job: ForwardJob
    ) -> None:
        started_at = time.time()
        t0 = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        excerpt: str | None = None
        retry_after: float | None = None
        verdict = Verdict.TRANSIENT
        try:
            try:
                request = await self._build(destination, job)
            except ForwardBuildError as exc:
                error, verdict = str(exc), Verdict.PERMANENT
            else:
                status_code, error, excerpt, retry_after = await send(transport, target, destination, request)
                verdict = classify(status_code)
        except Exception as exc:  # unforeseen: recorded as this attempt's error, transient (the policy still ends it)
            self._log.exception("forward.attempt_error", delivery_id=job.delivery_id, destination=destination.name)
            error = describe(exc, secrets=secrets_of(transport_options(destination)))
            verdict = Verdict.TRANSIENT
        latency = time.perf_counter() - t0
        attempts = job.attempts + 1
        now = time.time()
        try:
            decision = decide(
                verdict,
                policy=destination.retry,
                attempts=attempts,
                now=now,
                first_attempt_at=job.first_attempt_at or started_at,
                retry_after=retry_after,
            )
        except Exception as exc:
            self._log.exception("forward.decide_error", delivery_id=job.delivery_id, destination=destination.name)
            error = error or describe(exc)
            decision = fallback_decision(destination.retry, attempts=attempts, now=now)
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
        try:
            self._observe(job, result, verdict)
        except Exception:  # metrics or logging must not keep the attempt from being recorded
            self._log.exception("forward.observe_error", destination=destination.name)
        await self._record(result, job)

    async def _record(self, result: AttemptResult, job: ForwardJob) -> None:
        """Persist one attempt, within `RECORD_TIMEOUT`. On failure the job stays leased and is attempted again when
        its lease ends (at least once); a run of failures is logged at its first, then summarised."""
        try:
            async with asyncio.timeout(RECORD_TIMEOUT):
                await self._queue.record_attempts([result])
        except Exception as exc:
            self._record_failures.failed(exc, delivery_id=job.delivery_id, destination=result.destination)
        else:
            self._record_failures.succeeded()

    async def _build(self, destination: Destination, job: ForwardJob) -> OutgoingRequest:
        """The request: inline for a small body; in the worker process for a large one (parsing it for a template
        and signing it would stall the event loop)."""
        route = None
        if job.route is not None:
            route = self._routes().routes_by_name.get(job.route)
            if route is None:
                raise ForwardBuildError(f"route {job.route!r} is no longer configured")
        if self._offload.inline(len(job.body)):
            return build_forward(
                destination,
                delivery_id=job.delivery_id,
                event=job.event,
                content_kind=job.content_kind,
                headers=job.headers,
                body=job.body,
                template=route.template if route is not None else None,
            )
        return await self._offload.run(
            len(job.body),
            build_forward_compiling,
            destination,
            template_source=route.template_source if route is not None else None,
            delivery_id=job.delivery_id,
            event=job.event,
            content_kind=job.content_kind,
            headers=dict(job.headers),
            body=job.body,
        )

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


async def send(
    transport: ForwardTransport, target: str, destination: Destination, request: OutgoingRequest
) -> tuple[int | None, str | None, str | None, float | None]:
    """POST a built request within the destination's `timeout`: its (status code, error, answer's excerpt,
    `Retry-After` in seconds); a transport failure is its error (no credential in it), never raised."""
    try:
        async with asyncio.timeout(destination.timeout):
            answer = await transport.post(target, request.headers, request.body)
    except TimeoutError:
        return None, f"timeout after {destination.timeout:g} s", None, None
    except (TransportError, OSError) as exc:
        return None, describe(exc, secrets=secrets_of(transport_options(destination))), None, None
    excerpt = answer.body.decode("utf-8", errors="replace").strip()[:EXCERPT_CHARS] or None
    return answer.status, None, excerpt, parse_retry_after(answer.headers.get("retry-after"), now=time.time())


class _FailureRun:
    """Logs a run of the same failure once: its first with the traceback, then at most one summary line per
    `REPEAT_LOG_INTERVAL`, and one line when it ends. Bounded whatever the rate of failures."""

    def __init__(self, log: Any, event: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._event = event
        self._clock = clock
        self.failures = 0  # in the current run
        self._last_logged = 0.0

    def failed(self, exc: BaseException, **fields: Any) -> None:
        self.failures += 1
        now = self._clock()
        if self.failures == 1:
            self._last_logged = now
            self._log.error(self._event, error=describe(exc), exc_info=exc, **fields)
        elif now - self._last_logged >= REPEAT_LOG_INTERVAL:
            self._last_logged = now
            self._log.error(self._event + "_repeated", failures=self.failures, error=describe(exc), **fields)

    def succeeded(self) -> None:
        if self.failures:
            self._log.info(self._event + "_ended", failures=self.failures)
            self.failures = 0


class _Unusable:
    """The transport of a destination whose transport cannot be built (an unreadable `ca_bundle`, say)."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        raise TransportError(f"the destination's client cannot be built: {self._reason}"[:ERROR_CHARS])

    async def close(self) -> None:
        return None


def transport_options(destination: Destination) -> TransportOptions:
    return TransportOptions(
        url=destination.url,
        size=destination.concurrency,
        max_body=_EXCERPT_BYTES,
        ca_bundle=destination.ca_bundle,
        proxy=destination.proxy,
    )


def fallback_decision(policy: RetryPolicy, *, attempts: int, now: float) -> Decision:
    """When `decide` itself failed: dead once the attempts have run out, else due again after the longest delay."""
    if attempts >= policy.max_attempts:
        return Decision(ForwardStatus.DEAD, None)
    return Decision(ForwardStatus.RETRY, now + policy.max_delay)


def describe(exc: BaseException, *, secrets: Sequence[str] = ()) -> str:
    """An error for the attempt log: the exception's class and a short message, with `secrets` (a destination URL's
    path and query, a proxy's credentials) cut out."""
    message = " ".join(str(exc).split())
    for secret in secrets:
        if secret:
            message = message.replace(secret, "…")
    text = f"{exc.__class__.__name__}: {message}" if message else exc.__class__.__name__
    return text[:ERROR_CHARS]


def secrets_of(options: TransportOptions) -> list[str]:
    """What an error message must not show: the URL's path and query (a chat hook's token often is one) and the
    proxy URL's user information."""
    found: list[str] = []
    parts = urlsplit(options.url)
    if parts.path not in ("", "/") or parts.query:
        found.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        if parts.query:
            found.append(parts.query)
    if options.proxy:
        proxy = urlsplit(options.proxy)
        found += [part for part in (proxy.password, proxy.username) if part]
    return sorted(found, key=len, reverse=True)


def destination_timeout(table: RouteTable, name: str) -> float:
    destination = table.destinations.get(name)
    return 10.0 if destination is None else destination.timeout


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
