"""The SQLite change feed: the `changes` table, read in order, with in-process wake-ups.

A cursor is the sequence number of a change, as text. One writer commits the changes in sequence order, so a
reader following `seq > N` never misses one that commits late.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from ghingest.adapters.sql.schema import changes
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.core.int64 import parse_int64
from ghingest.core.pagination import InvalidCursor
from ghingest.ports.feed import Change


def _seq_of(cursor: str) -> int:
    try:
        return parse_int64(cursor, minimum=0)
    except ValueError:
        raise InvalidCursor("not a cursor of this change feed") from None


class SqliteChangeFeed:
    def __init__(self, reader: SqliteReader, changed: Notifier) -> None:
        self._reader = reader
        self._changed = changed

    async def changes_since(self, cursor: str, *, limit: int = 500) -> Sequence[Change]:
        after = _seq_of(cursor)
        statement = sa.select(changes).where(changes.c.seq > after).order_by(changes.c.seq).limit(limit)
        rows = await self._reader.fetch_all(statement)
        if not rows and after > await self._latest_seq():
            raise InvalidCursor("the cursor is ahead of this change feed (another database?)")
        return [Change(cursor=str(r.seq), kind=r.kind, ref=r.ref) for r in rows]

    async def latest(self) -> str:
        return str(await self._latest_seq())

    async def _latest_seq(self) -> int:
        return await self._reader.scalar_int("SELECT coalesce(max(seq), 0) FROM changes")

    async def wait_for_change(self, after: str, timeout: float) -> None:
        if await self._latest_seq() > _seq_of(after):
            return
        await self._changed.wait(timeout)
