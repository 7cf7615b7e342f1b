"""Many processes on one database: forward claimers never share a job, and the same outcome recorded by two
transactions at once creates one event, one release history entry and one set of forward jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.routing import ForwardTarget
from ghingest.ports import EventQuery, ManualClock
from tests.contract.support import incoming, outcome_of
from tests.integration.postgres.support import connect

pytestmark = pytest.mark.anyio

CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", None)


async def _jobs(backend: Any, clock: ManualClock, count: int) -> None:
    for n in range(count):
        payload = release_payload(release_id=1000 + n)
        assert await backend.inbox.append(incoming(f"d{n}", payload=payload), received_at=clock.now())
    claimed = await backend.inbox.claim(limit=count, lease_seconds=60)
    await backend.store.record_outcomes([outcome_of(c.delivery, [CI]) for c in claimed])


async def test_two_claimers_on_two_connections_never_get_the_same_job(
    backends: Callable[..., Any], clock: ManualClock
) -> None:
    one, two = await backends(), await backends()
    await _jobs(one, clock, 60)
    taken: list[list[int]] = [[], []]

    async def drain(index: int, backend: Any) -> None:
        while jobs := await backend.forwards.claim("ci", limit=3, lease_seconds=60):
            taken[index].extend(job.id for job in jobs)
            await asyncio.sleep(0)

    await asyncio.gather(drain(0, one), drain(1, two), drain(0, one), drain(1, two))
    everything = taken[0] + taken[1]
    assert len(everything) == len(set(everything)) == 60
    assert taken[0]
    assert taken[1]


async def test_a_claim_skips_jobs_another_transaction_has_locked(
    backends: Callable[..., Any], clock: ManualClock, postgres_url: str
) -> None:
    backend = await backends()
    await _jobs(backend, clock, 4)
    other = await connect(postgres_url)
    try:
        async with other.transaction():  # another claimer, in the middle of its claim
            cursor = await other.execute("SELECT id FROM forward_jobs ORDER BY id LIMIT 2 FOR UPDATE")
            locked = {row[0] for row in await cursor.fetchall()}
            jobs = await asyncio.wait_for(backend.forwards.claim("ci", limit=10, lease_seconds=60), 10)
            assert len(jobs) == 2
            assert locked.isdisjoint(job.id for job in jobs)  # taken without waiting for the lock
    finally:
        await other.close()


async def test_a_delivery_claim_skips_rows_another_claimer_holds(
    backends: Callable[..., Any], clock: ManualClock
) -> None:
    one, two = await backends(), await backends()
    for n in range(40):
        await one.inbox.append(incoming(f"c{n}"), received_at=clock.now())
    claims = await asyncio.gather(*(backend.inbox.claim(limit=7, lease_seconds=60) for backend in (one, two) * 4))
    ids = [c.delivery.delivery_id for batch in claims for c in batch]
    ids += [c.delivery.delivery_id for c in await one.inbox.claim(limit=100, lease_seconds=60)]  # what is left
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(f"c{n}" for n in range(40))


async def test_the_same_outcome_recorded_twice_at_once_is_recorded_once(
    backends: Callable[..., Any], clock: ManualClock
) -> None:
    one, two = await backends(), await backends()
    for n in range(10):
        await one.inbox.append(incoming(f"r{n}", payload=release_payload(release_id=7)), received_at=clock.now())
    claimed = await one.inbox.claim(limit=10, lease_seconds=60)
    outcomes = [outcome_of(c.delivery, [CI, CHAT]) for c in claimed]
    for _ in range(5):  # a worker whose lease ran out and the one that claimed the batch again, both recording
        await asyncio.gather(one.store.record_outcomes(outcomes), two.store.record_outcomes(list(reversed(outcomes))))
    events = await one.reads.list_events(EventQuery(limit=100))
    assert sorted(e.record.delivery_id for e in events.items) == sorted(f"r{n}" for n in range(10))
    view = await one.reads.get_release(7)
    assert view is not None
    assert sorted(entry.delivery_id for entry in view.record.history) == sorted(f"r{n}" for n in range(10))
    for n in range(10):
        forwards = await one.forward_log.forwards_of(f"r{n}")
        assert sorted((f.destination, f.generation) for f in forwards) == [("chat", 0), ("ci", 0)]
