"""Destination health and control, on every backend: the attempt log read by time (windows, nearest-rank latency
percentiles, the most recent attempts, recovery from the last error), pauses that no claim passes and that outlive
a restart, the time paused credited to the held-back jobs' `max_age`, and each destination's last test delivery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ghingest.core.destination_health import DAY, HOUR
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports import AttemptResult, DestinationPause, DestinationTest, ManualClock
from tests.contract.support import let_waiters_start
from tests.contract.test_forward_queue import CHAT, CI, claim, routed

pytestmark = pytest.mark.needs("inbox", "store", "reads", "forwards", "forward_log")


def tried(job: Any, status: ForwardStatus, *, at: float, latency: float, code: int | None = 200) -> AttemptResult:
    return AttemptResult(
        job_id=job.id, destination=job.destination, started_at=at, latency=latency, status_code=code, error=None,
        response_excerpt=None, next_status=status, next_attempt_at=at if status is ForwardStatus.RETRY else None,
    )  # fmt: skip


async def test_health_windows_count_attempts_by_their_start_with_nearest_rank_percentiles(
    backend: Any, clock: ManualClock
) -> None:
    await routed(backend, clock, {f"d{i}": [CI] for i in range(10)} | {"idle": [CHAT]})
    jobs = {j.delivery_id: j for j in await claim(backend, "ci", limit=10)}
    now = clock.now()
    # Two hours ago: a dead letter and three successes, slow. Ten minutes ago: a retry, then five successes, fast.
    old = [tried(jobs["d0"], ForwardStatus.DEAD, at=now - 7200, latency=1.0, code=400)]
    old += [tried(jobs[f"d{i}"], ForwardStatus.DELIVERED, at=now - 7200 + i, latency=float(i + 1)) for i in (1, 2, 3)]
    await backend.forwards.record_attempts(old)
    await backend.forwards.record_attempts(
        [tried(jobs["d4"], ForwardStatus.RETRY, at=now - 600, latency=0.1, code=503)]
    )
    await backend.forwards.record_attempts(
        [tried(jobs[f"d{i}"], ForwardStatus.DELIVERED, at=now - 600 + i, latency=i / 10) for i in range(5, 10)]
    )

    [ci] = await backend.forward_log.activity((HOUR, DAY), recent=3)  # chat has jobs, no attempt
    assert ci.destination == "ci"
    hour, day = ci.windows
    assert (hour.seconds, hour.attempts, hour.delivered, hour.failed, hour.dead) == (HOUR, 6, 5, 1, 0)
    assert (hour.p50, hour.p95) == pytest.approx((0.6, 0.9))  # latencies .1 .5 .6 .7 .8 .9: ranks 3 and 6
    assert (day.attempts, day.delivered, day.failed, day.dead) == (10, 8, 2, 1)
    assert (day.p50, day.p95) == pytest.approx((0.8, 4.0))  # ranks 5 and 10 of ten
    assert [(a.started_at, a.delivered) for a in ci.recent] == [(now - 591, True), (now - 592, True), (now - 593, True)]
    assert ci.recovered_at == now - 595  # the first success after the retry at now - 600

    clock.advance(HOUR)  # the recent ones leave the hour
    [ci] = await backend.forward_log.activity((HOUR, DAY), recent=3)
    assert [(w.attempts, w.p50) for w in ci.windows] == [(0, None), (10, pytest.approx(0.8))]
    clock.advance(DAY)
    [ci] = await backend.forward_log.activity((HOUR, DAY), recent=1)
    assert [(w.attempts, w.delivered, w.p50, w.p95) for w in ci.windows] == [(0, 0, None, None)] * 2
    assert len(ci.recent) == 1  # the most recent attempt is older than any window, still the most recent


async def test_a_paused_destination_is_claimed_by_no_one_until_it_is_resumed(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"d1": [CI, CHAT], "d2": [CI]})
    paused_at = clock.now()
    pause = await backend.forwards.pause("ci", by="alice")
    assert pause == DestinationPause("ci", "alice", paused_at)
    clock.advance(5)
    assert await backend.forwards.pause("ci", by="bob") == pause  # the first pause stands
    assert await backend.forwards.paused() == [pause]
    assert await claim(backend, "ci") == []
    assert [j.delivery_id for j in await claim(backend, "chat")] == ["d1"]  # others flow
    await routed(backend, clock, {"d3": [CI]})  # jobs keep arriving, and wait
    assert await claim(backend, "ci") == []
    [stats] = [s for s in await backend.forward_log.stats() if s.destination == "ci"]
    assert (stats.queued, stats.attempts, stats.dead) == (3, 0, 0)

    waiter = asyncio.ensure_future(backend.forwards.wait_for_work(60.0))
    await let_waiters_start()
    assert await backend.forwards.paused() == [pause]  # (a round trip: the waiter has looked at the queues)
    assert await backend.forwards.resume("ci") == pause
    await asyncio.wait_for(waiter, 10.0)  # pumps hear of it at once
    assert await backend.forwards.resume("ci") is None
    assert await backend.forwards.paused() == []
    assert sorted(j.delivery_id for j in await claim(backend, "ci")) == ["d1", "d2", "d3"]
    assert await backend.forwards.resume("nowhere") is None


async def test_the_time_paused_does_not_count_towards_a_held_back_jobs_max_age(
    backend: Any, clock: ManualClock
) -> None:
    await routed(backend, clock, {"d1": [CI]})
    [job] = await claim(backend, "ci")
    first = clock.now()
    await backend.forwards.record_attempts([tried(job, ForwardStatus.RETRY, at=first, latency=0.1, code=503)])
    await backend.forwards.pause("ci", by="alice")
    clock.advance(1000)
    assert await claim(backend, "ci") == []  # due, held back
    await backend.forwards.resume("ci")
    [again] = await claim(backend, "ci")
    assert (again.id, again.attempts, again.first_attempt_at) == (job.id, 1, first + 1000)


async def test_test_deliveries_are_kept_per_destination_apart_from_the_attempt_log(
    backend: Any, clock: ManualClock
) -> None:
    def ping(destination: str, code: int | None, by: str) -> DestinationTest:
        error = None if code else "cannot connect to ci.internal:443: ConnectionRefusedError"
        return DestinationTest(destination, f"ping-{by}", by, clock.now(), 0.012, code, error, "ok" if code else None)

    await backend.forwards.record_test(ping("ci", None, "alice"))
    clock.advance(1)
    await backend.forwards.record_test(ping("ci", 200, "bob"))  # the last one is kept
    await backend.forwards.pause("chat", by="carol")
    await backend.forwards.record_test(ping("chat", 503, "carol"))  # while paused: a test is no forward
    tests = await backend.forward_log.tests()
    assert tests == [ping("chat", 503, "carol"), ping("ci", 200, "bob")]
    assert [t.delivered for t in tests] == [False, True]
    assert await backend.forward_log.activity((HOUR,), recent=3) == []
    assert [s.destination for s in await backend.forward_log.stats()] == []
    assert [p.destination for p in await backend.forwards.paused()] == ["chat"]  # a test leaves the pause alone


@pytest.mark.needs("persistent")
async def test_pauses_and_tests_outlive_a_restart(backend: Any, clock: ManualClock, reopen: Any) -> None:
    await routed(backend, clock, {"d1": [CI]})
    pause = await backend.forwards.pause("ci", by="alice")
    test = DestinationTest("ci", "ping-1", "alice", clock.now(), 0.5, 204, None, None)
    await backend.forwards.record_test(test)
    async with reopen() as again:
        assert await again.forwards.paused() == [pause]
        assert await claim(again, "ci") == []
        assert await again.forward_log.tests() == [test]
        assert await again.forwards.resume("ci") == pause
    assert [j.delivery_id for j in await claim(backend, "ci")] == ["d1"]  # resumed by the other process
