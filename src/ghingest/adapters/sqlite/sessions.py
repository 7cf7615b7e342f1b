"""Revoked dashboard sessions in SQLite: written by the writer (group commit), read on the read pool."""

from __future__ import annotations

import sqlite3

from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.ports.clock import SYSTEM_CLOCK, Clock

_PURGE = "DELETE FROM session_revocations WHERE until <= ?"
_REVOKE = (
    "INSERT INTO session_revocations (session_id, revoked_at, until) VALUES (?, ?, ?)"
    " ON CONFLICT (session_id) DO UPDATE SET until = max(until, excluded.until)"
)
_IS_REVOKED = "SELECT 1 FROM session_revocations WHERE session_id = :sid AND until > :now"  # primary-key look-up


class SqliteSessionRevocations:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock

    async def revoke(self, session_id: str, until: float) -> None:
        now = self._clock.now()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(_PURGE, (now,))  # uses ix_session_revocations_until; sign-outs are rare, so is this
            conn.execute(_REVOKE, (session_id, now, until))

        await self._writer.run(work)

    async def is_revoked(self, session_id: str) -> bool:
        return await self._reader.scalar_int(_IS_REVOKED, sid=session_id, now=self._clock.now()) == 1
