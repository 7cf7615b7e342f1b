"""The SQLite inbox gives appends priority: under a flood of appends a claim waits, but only a bounded time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ghingest.adapters.sqlite import inbox as sqlite_inbox
from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.core.delivery import ContentKind, IncomingDelivery

FLOOD = 3000


def _delivery(i: int) -> IncomingDelivery:
    return IncomingDelivery(
        delivery_id=f"flood-{i}",
        event="ping",
        hook_id="1",
        content_kind=ContentKind.JSON,
        headers={"x-github-event": "ping"},
        body=b'{"zen": "Keep it logically awesome."}',
        secret_index=0,
    )


def test_a_claim_during_a_flood_waits_a_bounded_time_then_gets_its_batch(tmp_path: Path) -> None:
    database = SqliteDatabase(f"sqlite:///{tmp_path / 'flood.db'}")
    database.upgrade()
    asyncio.run(database.start())
    inbox = database.inbox

    async def main() -> tuple[float, float, int, float]:
        quiet_started = time.monotonic()
        assert await inbox.claim(limit=10, lease_seconds=30) == []
        quiet = time.monotonic() - quiet_started
        await asyncio.gather(*(inbox.append(_delivery(i), received_at=0.0) for i in range(FLOOD)))
        rate = inbox.append_load()
        started = time.monotonic()
        claimed = await inbox.claim(limit=FLOOD, lease_seconds=30)
        return quiet, rate, len(claimed), time.monotonic() - started

    try:
        quiet, rate, claimed, waited = asyncio.run(main())
    finally:
        asyncio.run(database.close())
    assert quiet < sqlite_inbox.MAX_CLAIM_DEFER  # no appends: no deferral (a deferral alone takes this long)
    assert rate > sqlite_inbox.APPEND_PRESSURE  # thousands of appends waiting at once are a flood
    assert claimed == FLOOD
    assert waited < sqlite_inbox.MAX_CLAIM_DEFER + 1.0
