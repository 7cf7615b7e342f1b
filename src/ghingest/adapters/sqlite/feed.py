"""The SQLite change feed: the `changes` table, read in order, with in-process wake-ups."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ghingest.adapters.sql.schema import changes
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.ports import Change


class SqliteChangeFeed:
    def __init__(self, reader: SqliteReader, changed: Notifier) -> None:
        self._reader = reader
        self._changed = changed

    async def changes_since(self, seq: int, *, limit: int = 500) -> Sequence[Change]:
        statement = sa.select(changes).where(changes.c.seq > seq).order_by(changes.c.seq).limit(limit)
        rows = await self._reader.fetch_all(statement)
        return [Change(seq=r.seq, kind=r.kind, ref=r.ref) for r in rows]

    async def latest_seq(self) -> int:
        return await self._reader.scalar_int("SELECT coalesce(max(seq), 0) FROM changes")

    async def wait_for_change(self, after: int, timeout: float) -> None:
        if await self.latest_seq() > after:
            return
        await self._changed.wait(timeout)
