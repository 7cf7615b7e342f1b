"""The ForwardQueue and ForwardLog contract: jobs created with their delivery's outcome (the outbox), leased claims
per destination, attempts that move jobs on, dead letters, stats and replays."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import ForwardTarget
from ghingest.ports import AttemptResult, ManualClock, ReplaySelection
from tests.contract.support import incoming, ingest, let_waiters_start

pytestmark = pytest.mark.needs("inbox", "store", "reads", "forwards", "forward_log")

CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", "chat-route")


async def routed(backend: Any, clock: ManualClock, routes: dict[str, list[ForwardTarget]]) -> Any:
    """One release delivery per id (in repositories acme/r0, acme/r1 alternately), processed with `routes`."""
    deliveries = [
        incoming(delivery_id, payload=release_payload(release_id=100 + n, repository_name=f"acme/r{n % 2}"))
        for n, delivery_id in enumerate(routes)
    ]
    return await ingest(backend, deliveries, clock, forwards=routes, spacing=1.0)


def attempt(clock: ManualClock, job: Any, status: ForwardStatus, *, code: int | None = 200,
            next_at: float | None = None, error: str | None = None) -> AttemptResult:  # fmt: skip
    return AttemptResult(
        job_id=job.id,
        destination=job.destination,
        started_at=clock.now(),
        latency=0.25,
        status_code=code,
        error=error,
        response_excerpt="ok" if code == 200 else None,
        next_status=status,
        next_attempt_at=next_at,
    )


async def claim(backend: Any, destination: str, limit: int = 10, lease: float = 60) -> list[Any]:
    return list(await backend.forwards.claim(destination, limit=limit, lease_seconds=lease))


async def test_jobs_are_created_with_the_outcome_and_claimed_with_the_delivery(
    backend: Any, clock: ManualClock
) -> None:
    await routed(backend, clock, {"d1": [CI, CHAT], "d2": [CI], "d3": []})
    ci = await claim(backend, "ci")
    assert [j.delivery_id for j in ci] == ["d1", "d2"]
    job = ci[0]
    assert (job.route, job.event, job.attempts, job.replay, job.first_attempt_at) == (
        "releases",
        "release",
        0,
        False,
        None,
    )
    assert job.headers["x-github-delivery"] == "d1"
    assert orjson.loads(job.body)["release"]["id"] == 100
    assert job.content_kind is ContentKind.JSON
    d1 = await backend.reads.get_delivery("d1")
    assert (job.delivery_seq, job.received_at) == (d1.seq, d1.received_at)
    assert [j.delivery_id for j in await claim(backend, "chat")] == ["d1"]
    assert await claim(backend, "nowhere") == []
    assert await backend.forward_log.forwards_of("d3") == []
    assert await backend.forward_log.forwards_of("unknown") == []


async def test_recording_again_does_not_duplicate_jobs(backend: Any, clock: ManualClock) -> None:
    outcomes = await routed(backend, clock, {"d1": [CI, CHAT]})
    await backend.store.record_outcomes(outcomes)
    forwards = await backend.forward_log.forwards_of("d1")
    assert sorted((f.destination, f.generation) for f in forwards) == [("chat", 0), ("ci", 0)]


async def test_claims_respect_the_limit_and_two_claimers_never_share_a_job(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {f"d{i}": [CI] for i in range(7)})
    first, second = await asyncio.gather(claim(backend, "ci", limit=4), claim(backend, "ci", limit=4))
    assert sorted((len(first), len(second))) == [3, 4]
    assert {j.id for j in first}.isdisjoint(j.id for j in second)
    assert await claim(backend, "ci") == []  # every one is leased


@pytest.mark.needs("manual_clock")
async def test_a_job_whose_lease_runs_out_is_claimed_again(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"d1": [CI], "d2": [CI]})
    held = await claim(backend, "ci", lease=30)
    clock.advance(29)
    assert await claim(backend, "ci") == []
    clock.advance(2)
    again = await claim(backend, "ci")
    assert [(j.id, j.attempts) for j in again] == [(j.id, 0) for j in held]


async def test_released_jobs_are_due_at_once(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {f"d{i}": [CI] for i in range(3)})
    held = await claim(backend, "ci")
    assert await backend.forwards.release([held[0].id]) == 1  # a pump that stops: claimed, never started
    assert [j.id for j in await claim(backend, "ci")] == [held[0].id]
    assert await backend.forwards.release([]) == 0
    await backend.forwards.record_attempts([attempt(clock, held[1], ForwardStatus.DELIVERED)])
    assert await backend.forwards.release([held[1].id]) == 0  # delivered: not held any more


async def test_recover_makes_a_crashed_forwarders_jobs_due_as_far_as_it_can_know(
    backend: Any, clock: ManualClock
) -> None:
    await routed(backend, clock, {f"d{i}": [CI] for i in range(3)})
    held = await claim(backend, "ci")
    if backend.forwards.capabilities.single_forwarder:
        assert await backend.forwards.recover() == 3  # every lease is a crashed forwarder's
        assert sorted(j.id for j in await claim(backend, "ci")) == sorted(j.id for j in held)
    else:
        assert await backend.forwards.recover() == 0  # their leases run out
        assert await claim(backend, "ci") == []


@pytest.mark.needs("manual_clock")
async def test_attempts_move_jobs_on_and_are_logged_and_counted(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"ok": [CI], "later": [CI], "bad": [CI]})
    jobs = {j.delivery_id: j for j in await claim(backend, "ci")}
    tried_at = clock.now()
    await backend.forwards.record_attempts(
        [
            attempt(clock, jobs["ok"], ForwardStatus.DELIVERED),
            attempt(clock, jobs["later"], ForwardStatus.RETRY, code=503, next_at=clock.now() + 60),
            attempt(clock, jobs["bad"], ForwardStatus.DEAD, code=400),
        ]
    )
    await backend.forwards.record_attempts([attempt(clock, jobs["ok"], ForwardStatus.DEAD, code=500)])  # not held
    assert await claim(backend, "ci") == []  # the retry is not due yet
    clock.advance(59)
    assert await claim(backend, "ci") == []
    clock.advance(1)
    due = await claim(backend, "ci")
    assert [(j.delivery_id, j.attempts, j.first_attempt_at) for j in due] == [("later", 1, tried_at)]

    [ok] = await backend.forward_log.forwards_of("ok")
    assert (ok.status, ok.attempts, ok.last_status_code, ok.last_error) == (ForwardStatus.DELIVERED, 1, 200, None)
    assert (ok.last_attempt_at, ok.completed_at, ok.next_attempt_at) == (tried_at, tried_at + 0.25, None)
    assert [(a.number, a.status_code, a.outcome, a.response_excerpt, a.job_id) for a in ok.attempt_log] == [
        (1, 200, "delivered", "ok", ok.id)
    ]
    [bad] = await backend.forward_log.forwards_of("bad")
    assert (bad.status, bad.last_status_code, bad.last_error) == (ForwardStatus.DEAD, 400, "HTTP 400")
    assert [a.outcome for a in bad.attempt_log] == ["dead"]
    assert (bad.event, bad.repository) == ("release", "acme/r0")
    [later] = await backend.forward_log.forwards_of("later")
    assert [a.outcome for a in later.attempt_log] == ["retry"]

    [stats] = await backend.forward_log.stats()
    assert (stats.destination, stats.queued, stats.dead) == ("ci", 1, 1)
    assert (stats.attempts, stats.delivered, stats.failed) == (3, 1, 2)
    assert stats.success_rate == pytest.approx(1 / 3)
    assert stats.last_error in ("HTTP 503", "HTTP 400")
    assert (stats.last_attempt_at, stats.last_success_at, stats.last_error_at) == (tried_at, tried_at, tried_at)

    await backend.forwards.record_attempts(
        [attempt(clock, due[0], ForwardStatus.RETRY, code=None, error="connect timeout", next_at=clock.now() + 5)]
    )
    [later] = await backend.forward_log.forwards_of("later")
    assert (later.status, later.attempts, later.last_error, later.next_attempt_at) == (
        ForwardStatus.RETRY, 2, "connect timeout", clock.now() + 5
    )  # fmt: skip
    assert [(a.number, a.error) for a in later.attempt_log] == [(1, None), (2, "connect timeout")]


async def test_dead_letters_come_newest_first_in_keyset_pages(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {f"d{i}": [CI, CHAT] for i in range(5)})
    for destination in ("ci", "chat"):
        held = await claim(backend, destination)
        await backend.forwards.record_attempts([attempt(clock, j, ForwardStatus.DEAD, code=410) for j in held])
    everything = await backend.forward_log.dead_letters(limit=50)
    assert len(everything) == 10
    ids = [d.id for d in everything]
    assert ids == sorted(ids, reverse=True)
    first = await backend.forward_log.dead_letters(destination="ci", limit=2)
    rest = await backend.forward_log.dead_letters(destination="ci", before_id=first[-1].id, limit=50)
    assert [d.delivery_id for d in [*first, *rest]] == ["d4", "d3", "d2", "d1", "d0"]
    assert {d.destination for d in [*first, *rest]} == {"ci"}
    assert all(d.status is ForwardStatus.DEAD and d.event == "release" for d in everything)
    assert await backend.forward_log.dead_letters(destination="nowhere") == []


async def test_replays_supersede_dead_letters_one_generation_up(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"a": [CI, CHAT], "b": [CI], "c": [CHAT]})
    for job in await claim(backend, "ci"):
        await backend.forwards.record_attempts([attempt(clock, job, ForwardStatus.DEAD, code=400)])
    dead_ci = ReplaySelection(destination="ci", dead_only=True)
    targets = await backend.forward_log.replay_targets(dead_ci)
    assert [(destination, route) for _, destination, route in targets] == [("ci", "releases"), ("ci", "releases")]
    assert len(await backend.forward_log.dead_letters()) == 2  # selecting changes nothing
    assert await backend.forwards.enqueue_replays(targets) == 2
    assert await backend.forward_log.dead_letters() == []
    assert await backend.forward_log.replay_targets(dead_ci) == []
    a = await backend.forward_log.forwards_of("a")
    assert [(j.generation, j.status, j.replay) for j in a if j.destination == "ci"] == [
        (0, ForwardStatus.REPLAYED, False), (1, ForwardStatus.PENDING, True)
    ]  # fmt: skip
    replayed = await claim(backend, "ci")
    assert sorted(j.delivery_id for j in replayed) == ["a", "b"]
    assert all(j.replay and j.route == "releases" and j.attempts == 0 for j in replayed)
    again = await backend.forward_log.replay_targets(ReplaySelection(delivery_id="a", destination="ci"))
    assert await backend.forwards.enqueue_replays(again) == 1
    generations = [j.generation for j in await backend.forward_log.forwards_of("a") if j.destination == "ci"]
    assert generations == [0, 1, 2]


async def test_replay_selections_narrow_and_a_chosen_destination(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"a": [CI], "b": [CI], "c": []})
    received = {d: (await backend.reads.get_delivery(d)).received_at for d in "abc"}

    async def count(**fields: Any) -> int:
        return len(await backend.forward_log.replay_targets(ReplaySelection(**fields)))

    assert await count(delivery_id="a") == 1
    assert await count(repository="ACME/r1") == 1  # b; a glob, in any case
    assert await count(repository="acme/*") == 2
    assert await count(event="push") == 0
    assert await count(destination="chat") == 0
    assert await count(since=received["b"]) == 1
    assert await count(until=received["b"]) == 1
    assert await count(since=clock.now() + 60) == 0
    # To a chosen destination: every matching processed delivery, forwarded before or not, as its payload.
    targets = await backend.forward_log.replay_targets(ReplaySelection(event="release", to="audit"))
    assert [(destination, route) for _, destination, route in targets] == [("audit", None)] * 3
    assert await backend.forwards.enqueue_replays(targets) == 3
    audit = await claim(backend, "audit")
    assert sorted(j.delivery_id for j in audit) == ["a", "b", "c"]
    assert all(j.route is None and j.replay for j in audit)
    # To a destination a delivery went to before: that route (and its template) applies again.
    targets = await backend.forward_log.replay_targets(ReplaySelection(delivery_id="a", to="ci"))
    assert [(destination, route) for _, destination, route in targets] == [("ci", "releases")]
    await backend.forwards.enqueue_replays(targets)
    [job] = [j for j in await claim(backend, "ci") if j.replay]
    assert (job.delivery_id, job.route) == ("a", "releases")
    # Narrowed by the jobs a delivery has: only those forwarded to ci.
    assert await count(destination="ci", to="elsewhere") == 2


async def test_target_deliveries_are_a_dry_runs_first_deliveries(backend: Any, clock: ManualClock) -> None:
    await routed(backend, clock, {"a": [CI], "b": [CI, CHAT], "c": [CHAT]})
    targets = await backend.forward_log.replay_targets(ReplaySelection(event="release"))
    seqs = list(dict.fromkeys(seq for seq, _destination, _route in targets))
    assert len(seqs) == 3
    found = await backend.forward_log.target_deliveries([seqs[2], seqs[0], 10**12])  # the order asked; no unknown
    assert [(d.seq, d.delivery_id, d.event, d.repository) for d in found] == [
        (seqs[2], "c", "release", "acme/r0"),
        (seqs[0], "a", "release", "acme/r0"),
    ]
    assert found[1].received_at == (await backend.reads.get_delivery("a")).received_at
    assert await backend.forward_log.target_deliveries([]) == []


async def test_wait_for_work_wakes_when_jobs_are_created(backend: Any, clock: ManualClock) -> None:
    waiter = asyncio.ensure_future(backend.forwards.wait_for_work(60.0))
    await let_waiters_start()
    assert not waiter.done()
    await routed(backend, clock, {"d": [CI]})
    await asyncio.wait_for(waiter, 10.0)
