"""The SessionRevocations contract: a revoked session id stays revoked until its `until`, for every reader of the
database (a second connection, a reopened database), and revocations that ran out are purged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ghingest.adapters.sqlite.database import SqliteDatabase
from tests.contract.conftest import Backend


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_revoked_session_is_revoked_and_others_are_not(backend: Backend) -> None:
    async def scenario() -> tuple[bool, bool]:
        await backend.sessions.revoke("sid-1", time.time() + 3600)
        return await backend.sessions.is_revoked("sid-1"), await backend.sessions.is_revoked("sid-2")

    assert run(scenario()) == (True, False)


def test_revoking_twice_keeps_the_later_end(backend: Backend) -> None:
    async def scenario() -> bool:
        await backend.sessions.revoke("sid-1", time.time() + 3600)
        await backend.sessions.revoke("sid-1", time.time() - 1)
        return await backend.sessions.is_revoked("sid-1")

    assert run(scenario()) is True


def test_a_revocation_that_ran_out_no_longer_counts_and_is_purged(backend: Backend) -> None:
    async def scenario() -> tuple[bool, int]:
        await backend.sessions.revoke("old", time.time() - 1)
        expired = await backend.sessions.is_revoked("old")
        await backend.sessions.revoke("new", time.time() + 3600)
        rows = backend.database.reader.run_sync(
            lambda conn: conn.execute(sa.text("SELECT count(*) FROM session_revocations")).scalar()
        )
        return expired, int(rows or 0)

    assert run(scenario()) == (False, 1)


def test_a_revocation_is_seen_by_another_database_on_the_file_and_after_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = SqliteDatabase(url), SqliteDatabase(url)
    first.upgrade()
    first.start()
    second.start()
    try:
        run(first.sessions.revoke("sid-1", time.time() + 3600))
        assert run(second.sessions.is_revoked("sid-1")) is True
    finally:
        first.close()
        second.close()
    reopened = SqliteDatabase(url)
    reopened.start()
    try:
        assert run(reopened.sessions.is_revoked("sid-1")) is True
    finally:
        reopened.close()
