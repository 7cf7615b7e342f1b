"""The ChangeFeed contract: what the store recorded, in commit order, resumable from an opaque cursor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.pagination import InvalidCursor
from ghingest.ports import ManualClock
from tests.contract.support import incoming, ingest, let_waiters_start

pytestmark = pytest.mark.needs("inbox", "store", "feed")


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
