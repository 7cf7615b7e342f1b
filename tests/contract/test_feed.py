"""The ChangeFeed contract: what the store recorded, in commit order, resumable from an opaque cursor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.pagination import InvalidCursor
from ghingest.core.routing import ForwardTarget
from ghingest.ports import AttemptResult, ManualClock, ReplaySelection
from tests.contract.support import incoming, ingest, let_waiters_start

pytestmark = pytest.mark.needs("inbox", "store", "feed")

CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", "chat-route")


def kinds(changes: Any) -> list[tuple[str, str]]:
    return [(c.kind, c.ref) for c in changes]


async def test_changes_follow_processing_in_order(backend: Any, clock: ManualClock) -> None:
    start = await backend.feed.latest()
    assert await backend.feed.changes_since(start) == []
    await ingest(
        backend,
        [incoming("f1", payload=release_payload(release_id=5)), incoming("f2", event="push", payload={"ref": "x"})],
        clock,
    )
    changes = await backend.feed.changes_since(start)
    assert kinds(changes) == [("event", "f1"), ("release", "5"), ("event", "f2")]
    assert await backend.feed.changes_since(changes[-1].cursor) == []


async def test_a_reader_resumes_from_any_cursor(backend: Any, clock: ManualClock) -> None:
    start = await backend.feed.latest()
    await ingest(backend, [incoming(f"r{i}", event="push", payload={"ref": str(i)}) for i in range(5)], clock)
    changes = await backend.feed.changes_since(start)
    assert kinds(changes) == [("event", f"r{i}") for i in range(5)]
    assert kinds(await backend.feed.changes_since(changes[1].cursor)) == kinds(changes[2:])
    assert kinds(await backend.feed.changes_since(start, limit=2)) == kinds(changes[:2])
    resumed: list[Any] = []
    cursor = start
    while batch := await backend.feed.changes_since(cursor, limit=2):
        resumed += batch
        cursor = batch[-1].cursor
    assert kinds(resumed) == kinds(changes)


async def test_latest_is_where_only_what_comes_next_is_read(backend: Any, clock: ManualClock) -> None:
    await ingest(backend, [incoming("old", event="push", payload={"ref": "x"})], clock)
    latest = await backend.feed.latest()
    assert await backend.feed.changes_since(latest) == []
    await ingest(backend, [incoming("new", event="push", payload={"ref": "y"})], clock)
    assert kinds(await backend.feed.changes_since(latest)) == [("event", "new")]


@pytest.mark.parametrize("cursor", ["not a cursor", "", "W10", "WyJ4Il0"])
async def test_a_cursor_the_feed_did_not_make_is_invalid(backend: Any, clock: ManualClock, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await backend.feed.changes_since(cursor)


async def test_wait_for_change_returns_once_there_is_a_change(backend: Any, clock: ManualClock) -> None:
    start = await backend.feed.latest()
    waiter = asyncio.ensure_future(backend.feed.wait_for_change(start, 60.0))
    await let_waiters_start()
    assert not waiter.done()
    await ingest(backend, [incoming("w", event="push", payload={"ref": "x"})], clock)
    await asyncio.wait_for(waiter, 10.0)
    await asyncio.wait_for(backend.feed.wait_for_change(start, 60.0), 10.0)  # a change after it exists already


# --- forwards (kind "forward", ref the delivery id): each change of a delivery's forward jobs ------------------


def attempt(job: Any, status: ForwardStatus, clock: ManualClock) -> AttemptResult:
    return AttemptResult(
        job_id=job.id, destination=job.destination, started_at=clock.now(), latency=0.1,
        status_code=200 if status is ForwardStatus.DELIVERED else 500, error=None, response_excerpt=None,
        next_status=status,
    )  # fmt: skip


@pytest.mark.needs("forwards", "forward_log")
async def test_every_move_of_a_forward_job_is_a_change_of_its_delivery_in_commit_order(
    backend: Any, clock: ManualClock
) -> None:
    start = await backend.feed.latest()
    routes = {"d1": [CI, CHAT], "d2": [CI], "d3": []}
    deliveries = [incoming(d, payload=release_payload(release_id=10 + n)) for n, d in enumerate(routes)]
    await ingest(backend, deliveries, clock, forwards=routes)
    created = await backend.feed.changes_since(start)
    assert kinds(created) == [
        ("event", "d1"), ("release", "10"), ("forward", "d1"),  # one change for its two jobs
        ("event", "d2"), ("release", "11"), ("forward", "d2"),
        ("event", "d3"), ("release", "12"),  # no route: no forward
    ]  # fmt: skip
    mark = created[-1].cursor

    chat = list(await backend.forwards.claim("chat", limit=10, lease_seconds=60))
    assert await backend.feed.changes_since(mark) == []  # a claim is no change (a pump polls)
    assert await backend.forwards.release([job.id for job in chat]) == 1
    ci = list(await backend.forwards.claim("ci", limit=10, lease_seconds=60))
    assert [job.delivery_id for job in ci] == ["d1", "d2"]
    waiter = asyncio.ensure_future(backend.feed.wait_for_change(await backend.feed.latest(), 60))
    await let_waiters_start()
    await backend.forwards.record_attempts(
        [attempt(ci[0], ForwardStatus.DELIVERED, clock), attempt(ci[1], ForwardStatus.DEAD, clock)]
    )
    await asyncio.wait_for(waiter, 10.0)  # an attempt wakes the feed's waiters
    targets = await backend.forward_log.replay_targets(ReplaySelection(destination="ci", dead_only=True))
    assert await backend.forwards.enqueue_replays(targets) == 1
    moved = await backend.feed.changes_since(mark)
    assert kinds(moved) == [("forward", "d1"), ("forward", "d1"), ("forward", "d2"), ("forward", "d2")]
    # (released, delivered, dead, replayed) — and a reader resumes from any of them
    assert kinds(await backend.feed.changes_since(moved[1].cursor)) == kinds(moved[2:])
    assert kinds(await backend.feed.changes_since(created[2].cursor, limit=2)) == [("event", "d2"), ("release", "11")]
    if backend.forwards.capabilities.single_forwarder:  # at a start, every lease is a crashed forwarder's
        assert len(await backend.forwards.claim("chat", limit=10, lease_seconds=60)) == 1
        assert await backend.forwards.recover() == 1
        assert kinds(await backend.feed.changes_since(moved[-1].cursor)) == [("forward", "d1")]
