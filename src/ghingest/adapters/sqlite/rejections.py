"""The rejected-requests log in SQLite: a batch and its trim in one writer transaction (group commit, beside the
inbox's appends: one flush a second at most, a few hundred rows), reads on the read pool. The statements are the
shared ones (`ghingest.adapters.sql.rejections`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ghingest.adapters.sql import rejections as sql
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.rejections import RejectionBucket
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.rejections import (
    MAX_ROWS,
    RETENTION_SECONDS,
    RejectionQuery,
    RejectionSummary,
    rejection_after,
    rejection_cursor,
    summarize,
)


class SqliteRejectionLog:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock

    async def record(
        self,
        buckets: Sequence[RejectionBucket],
        *,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        rows = [sql.params(b) for b in buckets]
        oldest = sql.oldest_kept(self._clock.now(), keep_seconds)

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(sql.UPSERT, rows)
            conn.execute(sql.TRIM_OLD, (oldest,))
            if conn.execute(sql.ROWS).fetchone()[0] > keep_rows:
                conn.execute(sql.TRIM_ROWS, (keep_rows,))

        await self._writer.run(write)

    async def page(self, query: RejectionQuery, *, cursor: str | None = None, limit: int = 50) -> Page[RejectionBucket]:
        after = rejection_after(cursor) if cursor else None
        size = page_size(limit)
        rows = await self._reader.fetch_all(sql.select_page(query, after, size + 1))
        return page_of([sql.bucket_of(row) for row in rows], size, rejection_cursor)

    async def count_since(self, since: float) -> int:
        rows = await self._reader.fetch_all(sql.select_count_since(since))
        return int(rows[0][0])

    async def summary(self, *, since: float) -> RejectionSummary:
        return summarize([sql.bucket_of(row) for row in await self._reader.fetch_all(sql.select_since(since))])
