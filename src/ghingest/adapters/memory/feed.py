"""The memory change feed: the list of changes the store appended, read in order.

A cursor is `[epoch, n]` (`core.pagination.encode_cursor`): after the n-th change of the database whose epoch it
names. A cursor from another database (say, from before a restart: nothing persists) is one this feed did not make,
and so is one past its newest change: both raise `InvalidCursor`, and the reader starts again from `latest()`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ghingest.adapters.memory.signal import wait
from ghingest.adapters.memory.tables import MemoryDatabase
from ghingest.core.pagination import InvalidCursor, decode_cursor, encode_cursor
from ghingest.ports import Change


class MemoryChangeFeed:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def changes_since(self, cursor: str, *, limit: int = 500) -> Sequence[Change]:
        with self._db.transaction() as db:
            after = self._position(cursor)
            window = db.changes[after : after + max(0, limit)]
            return [Change(self._cursor(after + i + 1), kind, ref) for i, (kind, ref) in enumerate(window)]

    async def latest(self) -> str:
        with self._db.transaction() as db:
            return self._cursor(len(db.changes))

    async def wait_for_change(self, after: str, timeout: float) -> None:
        event = self._db.changed.register()
        with self._db.transaction() as db:
            if len(db.changes) > self._position(after):
                return
        await wait(event, timeout)

    def _cursor(self, position: int) -> str:
        return encode_cursor([self._db.epoch, position])

    def _position(self, cursor: str) -> int:
        """The number of changes before `cursor` (called under the lock)."""
        epoch, position = decode_cursor(cursor, types=(str, int))
        if epoch != self._db.epoch or not isinstance(position, int) or not 0 <= position <= len(self._db.changes):
            raise InvalidCursor("cursor is not valid")
        return position
