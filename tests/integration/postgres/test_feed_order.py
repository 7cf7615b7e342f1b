"""The change feed across processes: a reader following cursors never skips a change that commits late, and a
commit in another process wakes a waiter in this one (LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ghingest.adapters.postgres import store as store_module
from ghingest.ports import ManualClock, Outcome
from tests.contract.support import incoming, let_waiters_start, outcome_of
from tests.integration.postgres.support import connect, eventually, waiting_on_advisory_lock

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


async def _claimed_outcomes(backend: Any, clock: ManualClock, *ids: str) -> dict[str, Outcome]:
    for delivery_id in ids:
        await backend.inbox.append(incoming(delivery_id, event="push", payload={"ref": delivery_id}), received_at=1.0)
    claimed = await backend.inbox.claim(limit=10, lease_seconds=60)
    return {c.delivery.delivery_id: outcome_of(c.delivery) for c in claimed}


async def _last_change_id(url: str) -> int:
    async with await connect(url) as conn:
        row = await (await conn.execute("SELECT last_value FROM changes_seq_seq")).fetchone()
        assert row is not None
        return int(row[0])


async def test_a_change_that_commits_late_is_never_skipped(
    backends: Callable[..., Any], postgres_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real concurrent store transactions in two pools (two processes' worth): the first holds its change
    rows uncommitted; the second cannot even take a change id until the first commits, so ids commit in order,
    and a reader that follows `seq > cursor` between the two commits misses nothing."""
    first_backend, second_backend, reader = await backends(), await backends(), await backends()
    outcomes = await _claimed_outcomes(first_backend, clock, "first", "second")
    start = await reader.feed.latest()

    paused = {"first": (asyncio.Event(), asyncio.Event()), "second": (asyncio.Event(), asyncio.Event())}
    original = store_module._record

    async def record_then_hold(cursor: Any, ordered: Any, batch: Any, now: float) -> None:
        await original(cursor, ordered, batch, now)  # change rows written, feed lock held: not committed yet
        holding, go_on = paused[ordered[0].delivery.delivery_id]
        holding.set()
        await go_on.wait()

    monkeypatch.setattr(store_module, "_record", record_then_hold)
    first = asyncio.create_task(first_backend.store.record_outcomes([outcomes["first"]]))
    await asyncio.wait_for(paused["first"][0].wait(), 10)
    first_id = await _last_change_id(postgres_url)

    second = asyncio.create_task(second_backend.store.record_outcomes([outcomes["second"]]))
    await eventually(lambda: waiting_on_advisory_lock(postgres_url))  # the second waits for the feed's lock
    assert not second.done()
    assert await _last_change_id(postgres_url) == first_id  # ... before it took a change id
    assert await reader.feed.changes_since(start) == []

    paused["first"][1].set()  # the first commits; the second takes the next id and holds it uncommitted
    await first
    await asyncio.wait_for(paused["second"][0].wait(), 10)
    seen = await reader.feed.changes_since(start)
    assert [(c.kind, c.ref) for c in seen] == [("event", "first")]
    assert await _last_change_id(postgres_url) == first_id + 1

    paused["second"][1].set()
    await second
    after = await reader.feed.changes_since(seen[-1].cursor)
    assert [(c.kind, c.ref) for c in after] == [("event", "second")]
    assert [(c.kind, c.ref) for c in await reader.feed.changes_since(start)] == [
        ("event", "first"),
        ("event", "second"),
    ]


async def test_without_the_feed_lock_a_reader_would_skip_a_late_commit(postgres_url: str) -> None:
    """Why the lock: plain inserts take sequence values at once and commit in any order. The transaction holding
    the smaller id commits last, after a reader moved its cursor past it."""
    late, early, reader = await connect(postgres_url), await connect(postgres_url), await connect(postgres_url)
    try:
        async with late.transaction():
            await late.execute("INSERT INTO changes (kind, ref, at) VALUES ('event', 'late', 0)")
            await early.execute("INSERT INTO changes (kind, ref, at) VALUES ('event', 'early', 0)")  # commits
            rows = await (await reader.execute("SELECT seq, ref FROM changes WHERE seq > 0 ORDER BY seq")).fetchall()
            assert [ref for _, ref in rows] == ["early"]
            cursor = rows[-1][0]
        rows = await (await reader.execute("SELECT seq, ref FROM changes WHERE seq > %s", (cursor,))).fetchall()
        assert rows == []  # "late" committed with a smaller id than the cursor: a follower never sees it
        everything = await (await reader.execute("SELECT ref FROM changes ORDER BY seq")).fetchall()
        assert [ref for (ref,) in everything] == ["late", "early"]
    finally:
        for conn in (late, early, reader):
            await conn.close()


_OTHER_PROCESS = """
import asyncio, sys
from ghingest.adapters.postgres import open_postgres_backend
from tests.contract.support import incoming, process_all

async def main(url):
    backend = open_postgres_backend(url, pool_size=2)
    await backend.resources.start()
    try:
        await backend.inbox.append(incoming("elsewhere", event="push", payload={"ref": "x"}), received_at=1.0)
        await process_all(backend)
    finally:
        await backend.resources.close()

asyncio.run(main(sys.argv[1]))
"""


async def test_a_commit_in_another_process_wakes_the_waiters_of_this_one(
    backends: Callable[..., Any], postgres_url: str
) -> None:
    backend = await backends(poll_interval=600.0)  # no polling: only a NOTIFY can wake the waiters in time
    await eventually(lambda: backend.resources.listening)
    start = await backend.feed.latest()
    work = asyncio.ensure_future(backend.inbox.wait_for_work(600.0))
    change = asyncio.ensure_future(backend.feed.wait_for_change(start, 600.0))
    await let_waiters_start()
    assert not work.done()
    assert not change.done()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OTHER_PROCESS, postgres_url, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert await asyncio.wait_for(process.wait(), 60) == 0
    await asyncio.wait_for(asyncio.gather(work, change), 10)
    assert [c.ref for c in await backend.feed.changes_since(start)] == ["elsewhere"]
