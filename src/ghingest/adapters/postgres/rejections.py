"""The rejected-requests log in PostgreSQL: a batch and its trim in one transaction, shared by every process on the
database (the upsert adds counts, so two receivers' buckets of one key make one row). The statements are the shared
ones (`ghingest.adapters.sql.rejections`); the retention runs on the injected clock."""

from __future__ import annotations

from collections.abc import Sequence

from ghingest.adapters.postgres.connection import PostgresResources, clean, pyformat
from ghingest.adapters.sql import rejections as sql
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.rejections import RejectionBucket
from ghingest.ports.rejections import (
    MAX_ROWS,
    RETENTION_SECONDS,
    RejectionQuery,
    RejectionSummary,
    rejection_after,
    rejection_cursor,
    summarize,
)

_UPSERT = pyformat(sql.UPSERT)
_TRIM_OLD = pyformat(sql.TRIM_OLD)
_TRIM_ROWS = pyformat(sql.TRIM_ROWS)


class PostgresRejectionLog:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def record(
        self,
        buckets: Sequence[RejectionBucket],
        *,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        rows = [clean(sql.params(b)) for b in buckets]
        oldest = sql.oldest_kept(self._db.clock.now(), keep_seconds)
        async with self._db.transaction() as conn:
            if rows:
                async with conn.cursor() as cursor:
                    await cursor.executemany(_UPSERT, rows)
            await conn.execute(_TRIM_OLD, (oldest,))
            counted = await (await conn.execute(sql.ROWS)).fetchone()
            if counted is not None and counted[0] > keep_rows:
                await conn.execute(_TRIM_ROWS, (keep_rows,))

    async def page(self, query: RejectionQuery, *, cursor: str | None = None, limit: int = 50) -> Page[RejectionBucket]:
        after = rejection_after(cursor) if cursor else None
        size = page_size(limit)
        rows = await self._db.fetch_statement(sql.select_page(query, after, size + 1))
        return page_of([sql.bucket_of(row) for row in rows], size, rejection_cursor)

    async def count_since(self, since: float) -> int:
        rows = await self._db.fetch_statement(sql.select_count_since(since))
        return int(rows[0][0])

    async def summary(self, *, since: float) -> RejectionSummary:
        return summarize([sql.bucket_of(row) for row in await self._db.fetch_statement(sql.select_since(since))])
