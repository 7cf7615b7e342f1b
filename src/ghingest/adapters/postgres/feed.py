"""The PostgreSQL change feed: the `changes` table, read in id order, with wake-ups by LISTEN/NOTIFY.

Change ids are allocated and committed in one order (the store writes them last, under `store.FEED_LOCK`, held
until its commit), so a reader following `seq > N` never misses a change that commits late. A cursor is
`["pg", seq]` (`core.pagination.encode_cursor`); one ahead of the newest change is another database's.
"""

from __future__ import annotations

from collections.abc import Sequence

from ghingest.adapters.postgres.connection import CHANGES, PostgresResources
from ghingest.core.pagination import InvalidCursor, decode_cursor, encode_cursor
from ghingest.ports.feed import Change

_TAG = "pg"
_SINCE = "SELECT seq, kind, ref FROM changes WHERE seq > %s ORDER BY seq LIMIT %s"
_LATEST = "SELECT coalesce(max(seq), 0) FROM changes"


def _cursor(seq: int) -> str:
    return encode_cursor([_TAG, seq])


def _seq_of(cursor: str) -> int:
    tag, seq = decode_cursor(cursor, types=(str, int))
    if tag != _TAG or not isinstance(seq, int) or seq < 0:
        raise InvalidCursor("not a cursor of this change feed")
    return seq


class PostgresChangeFeed:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def changes_since(self, cursor: str, *, limit: int = 500) -> Sequence[Change]:
        after = _seq_of(cursor)
        rows = await self._db.fetch(_SINCE, (after, max(0, limit)))
        if not rows and after > await self._latest_seq():
            raise InvalidCursor("the cursor is ahead of this change feed (another database?)")
        return [Change(cursor=_cursor(seq), kind=kind, ref=ref) for seq, kind, ref in rows]

    async def latest(self) -> str:
        return _cursor(await self._latest_seq())

    async def _latest_seq(self) -> int:
        return int(await self._db.scalar(_LATEST) or 0)

    async def wait_for_change(self, after: str, timeout: float) -> None:
        seq = _seq_of(after)

        async def changed() -> bool:
            return await self._latest_seq() > seq

        await self._db.wait(CHANGES, timeout, changed)
