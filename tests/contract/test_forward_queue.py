"""The ForwardQueue contract: jobs created with their delivery's outcome (outbox), leased claims, attempts,
retries, dead letters, stats and replays. Every backend runs these unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import orjson
import pytest

from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.processing import Processed, StoredDelivery, process
from ghingest.core.routing import ForwardTarget
from ghingest.ports import AttemptResult, Outcome, ReplaySelection
from tests.contract.conftest import Backend


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def routed_as(delivery: StoredDelivery, targets: list[ForwardTarget]) -> Processed:
    """The delivery processed, with `targets` as its forwards (whatever a route table would say)."""
    return dataclasses.replace(process(delivery), forwards=tuple(targets))


async def ingest(backend: Backend, routed: dict[str, list[ForwardTarget]], *, event: str = "release") -> None:
    """Append one delivery per id, process them and record their forwards in the same outcome."""
    for n, delivery_id in enumerate(routed):
        payload = release_payload(release_id=100 + n, repository_name=f"acme/r{n % 2}")
        delivery = IncomingDelivery(
            delivery_id=delivery_id,
            event=event,
            hook_id="424242",
            content_kind=ContentKind.JSON,
            headers={"x-github-event": event, "x-github-delivery": delivery_id},
            body=orjson.dumps(payload),
            secret_index=0,
        )
        await backend.inbox.append(delivery, received_at=time.time())
    while claimed := await backend.inbox.claim(limit=50, lease_seconds=60):
        outcomes = [Outcome(delivery=d, processed=routed_as(d, routed[d.delivery_id])) for d in claimed]
        await backend.store.record_outcomes(outcomes, now=time.time())


def attempt(job_id: int, destination: str, status: ForwardStatus, *, code: int | None = 200,
            next_at: float | None = None, error: str | None = None) -> AttemptResult:  # fmt: skip
    return AttemptResult(
        job_id=job_id,
        destination=destination,
        started_at=time.time(),
        latency=0.01,
        status_code=code,
        error=error,
        response_excerpt="ok" if code == 200 else None,
        next_status=status,
        next_attempt_at=next_at,
    )


CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", "chat-route")


def test_jobs_are_created_with_the_outcome_and_claimed_with_the_delivery(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {"d1": [CI, CHAT], "d2": [CI], "d3": []})
        ci = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
        assert [j.delivery_id for j in ci] == ["d1", "d2"]
        job = ci[0]
        assert (job.route, job.event, job.attempts, job.replay) == ("releases", "release", 0, False)
        assert job.headers["x-github-delivery"] == "d1"
        assert orjson.loads(job.body)["release"]["id"] == 100
        assert job.content_kind is ContentKind.JSON
        chat = await backend.forwards.claim("chat", limit=10, lease_seconds=60)
        assert [j.delivery_id for j in chat] == ["d1"]
        assert await backend.forwards.forwards_of("d3") == []

    run(scenario())


def test_reprocessing_does_not_duplicate_jobs(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {"d1": [CI]})
        from ghingest.ports import ReprocessSelection

        assert await backend.store.mark_for_reprocess(ReprocessSelection(delivery_id="d1")) == 1
        while claimed := await backend.inbox.claim(limit=50, lease_seconds=60):
            outcomes = [Outcome(delivery=d, processed=routed_as(d, [CI])) for d in claimed]
            await backend.store.record_outcomes(outcomes, now=time.time())
        assert len(await backend.forwards.forwards_of("d1")) == 1

    run(scenario())


def test_claims_respect_limit_destination_and_lease(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {f"d{i}": [CI] for i in range(5)})
        first = await backend.forwards.claim("ci", limit=2, lease_seconds=60)
        assert len(first) == 2
        rest = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
        assert len(rest) == 3
        assert {j.id for j in first}.isdisjoint(j.id for j in rest)
        assert await backend.forwards.claim("ci", limit=10, lease_seconds=60) == []  # all leased
        assert await backend.forwards.claim("chat", limit=10, lease_seconds=60) == []
        assert await backend.forwards.release_leases([first[0].id]) == 1  # a pump that stops
        assert [j.id for j in await backend.forwards.claim("ci", limit=10, lease_seconds=60)] == [first[0].id]
        assert await backend.forwards.release_leases([]) == 0
        assert await backend.forwards.release_leases() == 5  # a forwarder starting after a crash
        again = await backend.forwards.claim("ci", limit=10, lease_seconds=0.05)
        assert len(again) == 5
        await asyncio.sleep(0.1)
        assert len(await backend.forwards.claim("ci", limit=10, lease_seconds=60)) == 5  # lease ran out

    run(scenario())


def test_attempts_move_jobs_on_and_are_listed_with_stats(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {"ok": [CI], "later": [CI], "bad": [CI]})
        jobs = {j.delivery_id: j for j in await backend.forwards.claim("ci", limit=10, lease_seconds=60)}
        await backend.forwards.record_attempts(
            [
                attempt(jobs["ok"].id, "ci", ForwardStatus.DELIVERED),
                attempt(jobs["later"].id, "ci", ForwardStatus.RETRY, code=503, next_at=time.time() + 0.2),
                attempt(jobs["bad"].id, "ci", ForwardStatus.DEAD, code=400),
            ]
        )
        assert await backend.forwards.claim("ci", limit=10, lease_seconds=60) == []  # the retry is not due yet
        await asyncio.sleep(0.25)
        due = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
        assert [(j.delivery_id, j.attempts) for j in due] == [("later", 1)]
        [ok] = await backend.forwards.forwards_of("ok")
        assert ok.status is ForwardStatus.DELIVERED
        assert [(a.number, a.status_code, a.outcome, a.response_excerpt) for a in ok.attempt_log] == [
            (1, 200, "delivered", "ok")
        ]
        [bad] = await backend.forwards.forwards_of("bad")
        assert (bad.status, bad.last_status_code, bad.last_error) == (ForwardStatus.DEAD, 400, "HTTP 400")
        dead = await backend.forwards.dead_letters()
        assert [d.delivery_id for d in dead] == ["bad"]
        assert dead[0].event == "release"
        assert await backend.forwards.dead_letters(destination="chat") == []
        [stats] = await backend.forwards.stats()
        assert (stats.destination, stats.queued, stats.dead) == ("ci", 1, 1)
        assert (stats.attempts, stats.delivered, stats.failed) == (3, 1, 2)
        assert stats.success_rate == pytest.approx(1 / 3)
        assert stats.last_error in ("HTTP 503", "HTTP 400")

    run(scenario())


def test_replays_supersede_dead_letters_and_count_in_a_dry_run(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {"a": [CI, CHAT], "b": [CI], "c": [CHAT]})
        for job in await backend.forwards.claim("ci", limit=10, lease_seconds=60):
            await backend.forwards.record_attempts([attempt(job.id, "ci", ForwardStatus.DEAD, code=400)])
        dead_ci = ReplaySelection(destination="ci", dead_only=True)
        assert await backend.forwards.replay(dead_ci, dry_run=True) == 2
        assert len(await backend.forwards.dead_letters()) == 2  # a dry run changes nothing
        assert await backend.forwards.replay(dead_ci) == 2
        assert await backend.forwards.dead_letters() == []
        assert await backend.forwards.replay(dead_ci, dry_run=True) == 0
        a = await backend.forwards.forwards_of("a")
        ci_jobs = [(j.generation, j.status, j.replay) for j in a if j.destination == "ci"]
        assert ci_jobs == [(0, ForwardStatus.REPLAYED, False), (1, ForwardStatus.PENDING, True)]
        replayed = await backend.forwards.claim("ci", limit=10, lease_seconds=60)
        assert sorted(j.delivery_id for j in replayed) == ["a", "b"]
        assert all(j.replay and j.route == "releases" for j in replayed)

    run(scenario())


def test_replay_filters_and_a_chosen_destination(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, {"a": [CI], "b": [CI], "c": []})
        assert await backend.forwards.replay(ReplaySelection(delivery_id="a"), dry_run=True) == 1
        assert await backend.forwards.replay(ReplaySelection(repository="ACME/r1"), dry_run=True) == 1  # b
        assert await backend.forwards.replay(ReplaySelection(event="push"), dry_run=True) == 0
        assert await backend.forwards.replay(ReplaySelection(since=time.time() + 60), dry_run=True) == 0
        assert await backend.forwards.replay(ReplaySelection(until=time.time() + 60), dry_run=True) == 2
        # To a chosen destination: every matching processed delivery, forwarded or not, as its payload.
        assert await backend.forwards.replay(ReplaySelection(event="release", to="audit")) == 3
        audit = await backend.forwards.claim("audit", limit=10, lease_seconds=60)
        assert sorted(j.delivery_id for j in audit) == ["a", "b", "c"]
        assert all(j.route is None and j.replay for j in audit)
        # To a destination a delivery went to before: that route (and its template) applies again.
        assert await backend.forwards.replay(ReplaySelection(delivery_id="a", to="ci")) == 1
        [job] = [j for j in await backend.forwards.claim("ci", limit=10, lease_seconds=60) if j.replay]
        assert job.route == "releases"

    run(scenario())


def test_wait_for_work_wakes_when_jobs_are_created(backend: Backend) -> None:
    async def scenario() -> None:
        waiter = asyncio.ensure_future(backend.forwards.wait_for_work(5.0))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await ingest(backend, {"d": [CI]})
        await asyncio.wait_for(waiter, 2.0)
        assert time.monotonic() - started < 2.0

    run(scenario())
