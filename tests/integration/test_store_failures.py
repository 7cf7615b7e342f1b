"""A store that cannot be opened, read or written: every caller gets a clear, bounded answer, in time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.errors import StoreUnavailable
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, sqlite_path


def big_delivery(n: int) -> IncomingDelivery:
    return IncomingDelivery(
        delivery_id=f"d-{n}",
        event="release",
        hook_id=None,
        content_kind=ContentKind.JSON,
        headers={},
        body=b"{}" + b" " * 1_000_000,
        secret_index=0,
    )


def test_a_store_that_cannot_be_opened_fails_every_write_with_an_error_of_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-file.db"
    folder.mkdir()  # SQLite cannot open a directory
    database = SqliteDatabase(f"sqlite:///{folder}")
    asyncio.run(database.start())

    async def scenario() -> list[StoreUnavailable]:
        errors = []
        for n in range(5):
            with pytest.raises(StoreUnavailable) as caught:
                await database.inbox.append(big_delivery(n), received_at=time.time())
            errors.append(caught.value)
        return errors

    try:
        errors = asyncio.run(scenario())
    finally:
        asyncio.run(database.close())
    assert len({id(error) for error in errors}) == len(errors)  # no shared object to grow a traceback on
    depths = {len(traceback.extract_tb(error.__traceback__)) for error in errors}
    assert len(depths) == 1
    assert "cannot be opened" in str(errors[0])


def test_readiness_fails_when_the_read_api_would(make_settings: Callable[..., Settings]) -> None:
    """A database that was never migrated: every read API query would fail, so the process is not ready."""
    runtime = Runtime.build(make_settings())
    with ThreadedServer(runtime, migrate=False) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["error"] == "not_ready"
        # The read API says so too: a JSON 503 with Retry-After, not an unhandled 500.
        read = client.get("/api/releases", headers={"Authorization": f"Bearer {TOKEN}"})
        assert read.status_code == 503, read.text
        assert read.json() == {"error": "service_unavailable", "detail": "the store is unavailable; try again shortly"}
        assert read.headers["retry-after"] == "5"


def test_readiness_checks_reads_and_writes(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/readyz").json() == {"status": "ready"}


def test_a_write_lock_held_by_another_process_is_a_quick_503_not_a_timeout(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(sqlite_busy_timeout=1.0)
    with ThreadedServer(Runtime.build(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        holder = subprocess.Popen(  # another process takes the write lock and keeps it
            [sys.executable, "-c", HOLD_LOCK, str(sqlite_path(server.runtime))],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            answer = post_webhook(client, signed(release(), delivery_id="while-locked"))
            elapsed = time.monotonic() - started
            assert answer.status_code == 503
            assert answer.headers["retry-after"]
            assert answer.json()["error"] == "store_unavailable"
            assert elapsed < 4.0, f"answered after {elapsed:.1f} s: GitHub gives up after 10"
            assert client.get("/readyz").status_code == 503
        finally:
            holder.kill()
            holder.communicate()
        assert post_webhook(client, signed(release(), delivery_id="while-locked")).status_code == 202
        assert client.get("/readyz").status_code == 200


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(60)
"""
