"""The forwarder over the transport seam (`MockTransport`), without sockets: every attempt's outcome is recorded and
moves its job on, whatever raised on the way; a failure to record is logged once and never loops."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import orjson
import pytest
from structlog.testing import capture_logs

from ghingest.app import forwarder as forwarder_module
from ghingest.app.forward_transport import (
    Answer,
    ConnectFailed,
    MockTransport,
    SentRequest,
    TransportOptions,
)
from ghingest.app.forwarder import Forwarder, _FailureRun, describe
from ghingest.app.metrics import Metrics
from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import Destination, Route, RouteTable, compile_template
from ghingest.ports import AttemptResult, DestinationPause, ForwardJob, ForwardQueueCapabilities, ReplayTarget

URL = "https://chat.example.com/hooks/T000/B000/s3cr3t-token?key=k3y"


@dataclass
class Job:
    job: ForwardJob
    status: ForwardStatus = ForwardStatus.PENDING
    due: float = 0.0


@dataclass
class FakeQueue:
    """The part of `ForwardQueue` the forwarder uses, in memory, with leases."""

    capabilities = ForwardQueueCapabilities()
    jobs: dict[int, Job] = field(default_factory=dict)
    results: list[AttemptResult] = field(default_factory=list)
    claims: int = 0
    record_error: Exception | None = None
    work: asyncio.Event = field(default_factory=asyncio.Event)
    paused_names: set[str] = field(default_factory=set)
    released: list[int] = field(default_factory=list)

    def add(self, job_id: int, destination: str = "chat", route: str | None = None, body: bytes | None = None) -> None:
        payload = body if body is not None else orjson.dumps(release_payload(tag=f"v{job_id}"))
        self.jobs[job_id] = Job(
            ForwardJob(
                id=job_id, delivery_seq=job_id, delivery_id=f"d-{job_id}", destination=destination, route=route,
                replay=False, attempts=0, received_at=time.time(), first_attempt_at=None, event="release",
                content_kind=ContentKind.JSON, headers={"x-github-event": "release"}, body=payload,
            )
        )  # fmt: skip

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        self.claims += 1
        if destination in self.paused_names:
            return []
        now = time.time()
        due = [
            j
            for j in self.jobs.values()
            if j.job.destination == destination
            and j.status in (ForwardStatus.PENDING, ForwardStatus.RETRY, ForwardStatus.DELIVERING)
            and j.due <= now
        ][:limit]
        for j in due:
            j.status, j.due = ForwardStatus.DELIVERING, now + lease_seconds
        return [j.job for j in due]

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        if self.record_error is not None:
            raise self.record_error
        for result in results:
            j = self.jobs[result.job_id]
            first = j.job.first_attempt_at or result.started_at
            j.job = replace(j.job, attempts=j.job.attempts + 1, first_attempt_at=first)
            j.status, j.due = result.next_status, result.next_attempt_at or 0.0
            self.results.append(result)
        self.work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.work.wait(), timeout)
        self.work.clear()

    async def release(self, job_ids: Sequence[int]) -> int:
        self.released += job_ids
        for job_id in job_ids:
            self.jobs[job_id].due = 0.0
        return len(job_ids)

    async def paused(self) -> Sequence[DestinationPause]:
        return [DestinationPause(name, "alice", 0.0) for name in sorted(self.paused_names)]

    async def recover(self) -> int:
        return 0

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        return 0

    def attempts_of(self, job_id: int) -> list[AttemptResult]:
        return [r for r in self.results if r.job_id == job_id]


FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, max_age=60.0, jitter=0.0)


def table(policy: RetryPolicy = FAST, url: str = URL, template: str | None = None) -> RouteTable:
    destination = Destination(name="chat", url=url, secret=b"destination-secret", timeout=2.0, retry=policy)
    routes = (Route(name="r", destinations=("chat",), template=compile_template(template)),) if template else ()
    return RouteTable(destinations={"chat": destination}, routes=routes)


async def run_until(
    queue: FakeQueue,
    routes: RouteTable,
    factory: Callable[[TransportOptions], MockTransport],
    done: Callable[[], bool],
    *,
    limit: float = 10.0,
) -> None:
    forwarder = Forwarder(
        queue, lambda: routes, metrics=Metrics(), poll_interval=0.01, supervise_interval=0.01,
        transport_factory=factory,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(forwarder.run(stop))
    deadline = time.monotonic() + limit
    try:
        while not done():
            assert time.monotonic() < deadline, "the forwarder did not get there in time"
            assert not task.done(), task
            await asyncio.sleep(0.005)  # a poll interval, bounded by the deadline
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def answering(handler: Callable[[SentRequest], Answer | Awaitable[Answer]]) -> tuple[
    Callable[[TransportOptions], MockTransport], list[MockTransport]
]:  # fmt: skip
    made: list[MockTransport] = []

    def factory(options: TransportOptions) -> MockTransport:
        made.append(MockTransport(handler, options))
        return made[-1]

    return factory, made


def test_a_delivered_forward_goes_through_the_seam_with_its_options() -> None:
    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1)
        factory, made = answering(lambda _r: Answer(200, {}, b"ok"))
        await run_until(queue, table(), factory, lambda: bool(queue.results))
        [result] = queue.results
        assert (result.status_code, result.next_status, result.response_excerpt) == (200, "delivered", "ok")
        [transport] = made
        assert transport.options is not None
        assert (transport.options.url, transport.options.size) == (URL, 4)
        assert transport.requests[0].target == "/hooks/T000/B000/s3cr3t-token?key=k3y"
        assert transport.requests[0].headers["X-GitHub-Delivery"] == "d-1"
        assert transport.closed  # closed when the pump stopped

    asyncio.run(scenario())


def test_an_exception_from_the_transport_is_a_recorded_transient_attempt_until_the_policy_ends_the_job() -> None:
    def explode(request: SentRequest) -> Answer:
        raise RuntimeError(f"kaput while posting to {URL}")

    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1)
        factory, made = answering(explode)
        with capture_logs() as logs:
            await run_until(queue, table(), factory, lambda: queue.jobs[1].status is ForwardStatus.DEAD)
        attempts = queue.attempts_of(1)
        assert [a.next_status for a in attempts] == ["retry", "retry", "dead"]  # max_attempts = 3
        assert all(a.status_code is None for a in attempts)
        error = attempts[0].error
        assert error is not None
        assert error.startswith("RuntimeError: kaput while posting to https://chat.example.com")
        assert "s3cr3t-token" not in error  # the URL's path and query (a hook's token) are cut out
        assert "k3y" not in error
        assert len(error) <= forwarder_module.ERROR_CHARS
        assert len(made[0].requests) == 3
        assert [e["event"] for e in logs].count("forward.attempt_error") == 3

    asyncio.run(scenario())


def test_a_transport_error_and_a_malformed_retry_after_are_recorded() -> None:
    answers = iter(
        [
            ConnectFailed("TlsFailed: certificate verify failed"),
            Answer(503, {"retry-after": "²"}, b"busy"),
            Answer(429, {"retry-after": "9" * 5000}, b""),
            Answer(202, {}, b""),
        ]
    )

    def handler(_: SentRequest) -> Answer:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1)
        factory, _ = answering(handler)
        policy = replace(FAST, max_attempts=10)
        await run_until(queue, table(policy), factory, lambda: queue.jobs[1].status is ForwardStatus.DELIVERED)
        log = [(a.status_code, a.next_status, a.error) for a in queue.attempts_of(1)]
        assert log == [
            (None, "retry", "ConnectFailed: TlsFailed: certificate verify failed"),
            (503, "retry", None),
            (429, "retry", None),
            (202, "delivered", None),
        ]

    asyncio.run(scenario())


def test_a_transport_that_cannot_be_built_fails_each_attempt_with_the_reason() -> None:
    def factory(options: TransportOptions) -> MockTransport:
        raise FileNotFoundError(2, "No such file or directory", "/etc/ghingest/ca.pem")

    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1)
        await run_until(queue, table(), factory, lambda: queue.jobs[1].status is ForwardStatus.DEAD)  # type: ignore[arg-type]
        errors = {a.error for a in queue.attempts_of(1)}
        assert errors == {
            "TransportError: the destination's client cannot be built: FileNotFoundError: [Errno 2] No such file or"
            " directory: '/etc/ghingest/ca.pem'"
        }

    asyncio.run(scenario())


def test_a_failing_decision_falls_back_to_the_policy_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ArithmeticError("no decision")

    monkeypatch.setattr(forwarder_module, "decide", broken)

    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1)
        factory, _ = answering(lambda _r: Answer(500, {}, b"oops"))
        policy = replace(FAST, max_attempts=2)
        await run_until(queue, table(policy), factory, lambda: queue.jobs[1].status is ForwardStatus.DEAD)
        attempts = queue.attempts_of(1)
        assert [(a.status_code, a.next_status) for a in attempts] == [(500, "retry"), (500, "dead")]
        assert attempts[0].error == "ArithmeticError: no decision"
        assert attempts[0].next_attempt_at is not None
        assert attempts[0].next_attempt_at - attempts[0].started_at >= policy.max_delay

    asyncio.run(scenario())


def test_a_template_that_fails_is_a_recorded_permanent_attempt() -> None:
    async def scenario() -> None:
        queue = FakeQueue()
        queue.add(1, route="r", body=orjson.dumps({"release": {}}))
        factory, made = answering(lambda _r: Answer(200, {}, b"ok"))
        routes = table(template='{"text": {{ payload.release.tag_name }}}')
        await run_until(queue, routes, factory, lambda: bool(queue.results))
        [attempt] = queue.results
        assert attempt.next_status == "dead"
        assert attempt.error is not None
        assert attempt.error.startswith("template failed")
        assert made[0].requests == []

    asyncio.run(scenario())


def test_a_failure_to_record_is_logged_once_and_the_job_waits_for_its_lease() -> None:
    async def scenario() -> None:
        queue = FakeQueue(record_error=OSError("disk I/O error"))
        for job_id in range(1, 21):
            queue.add(job_id)
        factory, made = answering(lambda _r: Answer(200, {}, b"ok"))
        with capture_logs() as logs:
            # Twenty attempts whose record fails, then many claims more: none of them is attempted again.
            await run_until(
                queue, table(), factory, lambda: sum(len(t.requests) for t in made) >= 20 and queue.claims >= 30
            )
        assert sum(len(t.requests) for t in made) == 20
        assert all(j.status is ForwardStatus.DELIVERING and j.due > time.time() + 20 for j in queue.jobs.values())
        errors = [e for e in logs if e["event"].startswith("forward.record_error")]
        assert [e["event"] for e in errors] == ["forward.record_error"]
        assert errors[0]["error"] == "OSError: disk I/O error"

    asyncio.run(scenario())


def test_a_run_of_failures_is_summarised_at_most_once_per_interval_and_its_end_logged() -> None:
    clock = [0.0]
    with capture_logs() as logs:
        from ghingest.app.logs import get_logger

        run = _FailureRun(get_logger("test"), "forward.record_error", clock=lambda: clock[0])
        for _ in range(1000):
            run.failed(OSError("locked"))
            clock[0] += 0.5  # 500 s of failures, two a second
        run.succeeded()
        run.succeeded()
    events = [e["event"] for e in logs]
    assert events[0] == "forward.record_error"
    assert events.count("forward.record_error_repeated") == 8  # every 60 s of the 500
    assert events[-1] == "forward.record_error_ended"
    assert logs[-1]["failures"] == 1000
    assert len(events) == 10


def test_describe_cuts_out_secrets_and_bounds_the_message() -> None:
    text = describe(ValueError("x" * 1000 + " token"), secrets=["token"])
    assert text.startswith("ValueError: xxx")
    assert "token" not in text
    assert len(text) == forwarder_module.ERROR_CHARS
    assert describe(KeyError()) == "KeyError"


def test_a_pause_hands_back_the_jobs_a_pump_holds_and_stops_its_claims_until_the_resume() -> None:
    """The attempt in flight when the pause is seen finishes; the job held behind it goes back to the queue; no
    claim is made while paused; after the resume every job is delivered, none twice."""

    async def scenario() -> None:
        queue = FakeQueue()
        for job_id in range(1, 6):
            queue.add(job_id)
        gate = asyncio.Event()

        async def handler(request: SentRequest) -> Answer:
            if request.headers["X-GitHub-Delivery"] == "d-1":
                await gate.wait()
            return Answer(200, {}, b"ok")

        factory, made = answering(handler)
        one_at_a_time = RouteTable(
            destinations={"chat": Destination(name="chat", url=URL, secret=b"s", concurrency=1, retry=FAST)}
        )
        forwarder = Forwarder(
            queue, lambda: one_at_a_time, metrics=Metrics(), poll_interval=0.01, supervise_interval=0.01,
            transport_factory=factory,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(forwarder.run(stop))

        async def until(condition: Callable[[], bool]) -> None:
            deadline = time.monotonic() + 10
            while not condition():
                assert time.monotonic() < deadline
                assert not task.done()
                await asyncio.sleep(0.005)  # a poll, bounded by the deadline

        try:
            await until(lambda: bool(made) and len(made[0].requests) == 1)  # d-1 in flight, d-2 held behind it
            queue.paused_names.add("chat")
            await until(lambda: queue.released == [2])
            claims = queue.claims
            gate.set()
            await until(lambda: len(queue.results) == 1)
            await asyncio.sleep(0.1)  # ten supervision rounds: nothing more is claimed or sent
            assert (queue.claims, len(made[0].requests)) == (claims, 1)
            queue.paused_names.clear()
            await until(lambda: len(queue.results) == 5)
            assert sorted(r.job_id for r in queue.results) == [1, 2, 3, 4, 5]
            assert all(r.next_status is ForwardStatus.DELIVERED for r in queue.results)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
