"""The rejected-requests log in memory: buckets by key, merged as every backend merges them (`core.rejections.merge`),
trimmed on the injected clock; scanned and sorted per call (the SQL backends walk their primary key in the same
order)."""

from __future__ import annotations

from collections.abc import Sequence

from ghingest.adapters.memory.tables import MemoryDatabase
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.rejections import RejectionBucket, merge, minute_of
from ghingest.ports.rejections import (
    MAX_ROWS,
    RETENTION_SECONDS,
    RejectionQuery,
    RejectionSummary,
    matches,
    rejection_after,
    rejection_cursor,
    rejection_order,
    summarize,
)


class MemoryRejectionLog:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def record(
        self,
        buckets: Sequence[RejectionBucket],
        *,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        with self._db.transaction() as db:
            stored = db.rejections
            for b in buckets:
                seen = stored.get(b.key)
                stored[b.key] = b if seen is None else merge(seen, b)
            oldest = minute_of(db.now() - keep_seconds)
            kept = sorted((k for k in stored if k[0] >= oldest), reverse=True)[:keep_rows]
            db.rejections = {k: stored[k] for k in kept}

    async def page(self, query: RejectionQuery, *, cursor: str | None = None, limit: int = 50) -> Page[RejectionBucket]:
        after = rejection_after(cursor) if cursor else None
        size = page_size(limit)
        with self._db.transaction() as db:
            found = [
                b for b in db.rejections.values() if matches(b, query) and (after is None or rejection_order(b) < after)
            ]
        found.sort(key=rejection_order, reverse=True)
        return page_of(found[: size + 1], size, rejection_cursor)

    async def count_since(self, since: float) -> int:
        return sum(b.count for b in self._since(since))

    async def summary(self, *, since: float) -> RejectionSummary:
        return summarize(self._since(since))

    def _since(self, since: float) -> list[RejectionBucket]:
        query = RejectionQuery(since=since)
        with self._db.transaction() as db:
            return [b for b in db.rejections.values() if matches(b, query)]
