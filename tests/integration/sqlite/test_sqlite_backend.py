"""What only the SQLite backend does, moved out of the contract suites (which never reach into a backend): appends
share group commits, an append the closed writer cannot commit is refused, revocations are purged from the table,
and a second database on the same file (or the file reopened) sees what the first committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.core.errors import StoreUnavailable
from tests.contract.support import incoming


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(f"sqlite:///{tmp_path / 'backend.db'}")
    database.upgrade()
    asyncio.run(database.start())
    try:
        yield database
    finally:
        asyncio.run(database.close())


def test_concurrent_appends_share_commits(database: SqliteDatabase) -> None:
    async def scenario() -> list[bool]:
        return await asyncio.gather(
            *(database.inbox.append(incoming(f"d-{i}"), received_at=time.time()) for i in range(300))
        )

    commits_before = database.writer.commits
    assert all(asyncio.run(scenario()))
    assert database.writer.commits - commits_before < 300  # group commit batched them


def test_an_append_after_the_writer_closed_is_unavailable_not_acknowledged(database: SqliteDatabase) -> None:
    database.writer.close()

    async def scenario() -> None:
        with pytest.raises(StoreUnavailable):
            await database.inbox.append(incoming("late"), received_at=time.time())

    asyncio.run(scenario())


def test_revocations_that_ran_out_are_purged_from_the_table(database: SqliteDatabase) -> None:
    async def scenario() -> None:
        await database.sessions.revoke("old", time.time() - 1)
        await database.sessions.revoke("new", time.time() + 3600)

    asyncio.run(scenario())
    rows = database.reader.run_sync(
        lambda conn: conn.execute(sa.text("SELECT session_id FROM session_revocations")).fetchall()
    )
    assert [row[0] for row in rows] == ["new"]


def test_a_revocation_is_seen_by_another_database_on_the_file_and_after_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = SqliteDatabase(url), SqliteDatabase(url)
    first.upgrade()
    asyncio.run(first.start())
    asyncio.run(second.start())
    try:
        asyncio.run(first.sessions.revoke("sid-1", time.time() + 3600))
        assert asyncio.run(second.sessions.is_revoked("sid-1")) is True
    finally:
        asyncio.run(first.close())
        asyncio.run(second.close())
    reopened = SqliteDatabase(url)
    asyncio.run(reopened.start())
    try:
        assert asyncio.run(reopened.sessions.is_revoked("sid-1")) is True
    finally:
        asyncio.run(reopened.close())
