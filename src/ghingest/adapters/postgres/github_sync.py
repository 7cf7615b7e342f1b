"""What ghingest keeps of its conversations with GitHub's API, in PostgreSQL: shared by every process on the
database (every write is an upsert or insert-if-new on the row's key, so concurrent reconcilers leave one row; a
lease is one conditional upsert, so of concurrent holders at most one gets it). The statements are the shared ones
(`ghingest.adapters.sql.github_sync`); every time is the injected clock's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ghingest.adapters.postgres.connection import PostgresResources, clean, pyformat
from ghingest.adapters.sql import github_sync as sql
from ghingest.adapters.sql.queries import chunks
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.reconcile import Gap, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.github_sync import gap_after, gap_cursor

_UPSERT_GAP = pyformat(sql.UPSERT_GAP)
_UPSERT_SCAN = pyformat(sql.UPSERT_SCAN)
_UPSERT_TRACKED = pyformat(sql.UPSERT_TRACKED)
_INSERT_TRACKED = pyformat(sql.INSERT_TRACKED)
_DELETE_TRACKED = pyformat(sql.DELETE_TRACKED)
_PURGE_GAPS = pyformat(sql.PURGE_GAPS)
_HOLD_LEASE = pyformat(sql.HOLD_LEASE)
_RELEASE_LEASE = pyformat(sql.RELEASE_LEASE)


class PostgresGitHubSyncState:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    # --- reconciliation -------------------------------------------------------------------------------------------

    async def gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> Mapping[str, Gap]:
        found: dict[str, Gap] = {}
        for ids in chunks(delivery_ids):
            rows = await self._db.fetch_statement(sql.select_gaps_for(hook, ids))
            found |= {gap.delivery_id: gap for gap in map(sql.gap_of, rows)}
        return found

    async def save_gaps(self, gaps: Sequence[Gap]) -> None:
        rows = [clean(sql.gap_params(gap)) for gap in sql.unique_gaps(gaps)]
        if rows:
            async with self._db.transaction() as conn, conn.cursor() as cursor:
                await cursor.executemany(_UPSERT_GAP, rows)

    async def open_gaps(self, hook: str) -> Sequence[Gap]:
        return [sql.gap_of(row) for row in await self._db.fetch_statement(sql.select_open_gaps(hook))]

    async def list_gaps(
        self,
        *,
        states: frozenset[GapState] | None = None,
        hook: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Gap]:
        after = gap_after(cursor) if cursor else None
        size = page_size(limit)
        rows = await self._db.fetch_statement(sql.select_gaps(states=states, hook=hook, after=after, limit=size + 1))
        return page_of([sql.gap_of(row) for row in rows], size, gap_cursor)

    async def gap_counts(self) -> Mapping[GapState, int]:
        return sql.gap_counts_of(await self._db.fetch_statement(sql.select_gap_counts()))

    async def purge_gaps(self, *, before: float) -> int:
        return await self._execute(_PURGE_GAPS, (before, before))

    async def save_scan(self, scan: HookScan) -> None:
        await self._execute(_UPSERT_SCAN, sql.scan_params(scan))

    async def get_scan(self, hook: str) -> HookScan | None:
        rows = await self._db.fetch_statement(sql.select_scan(hook))
        return sql.scan_of(rows[0]) if rows else None

    async def list_scans(self) -> Sequence[HookScan]:
        return [sql.scan_of(row) for row in await self._db.fetch_statement(sql.select_scans())]

    # --- release tracking -------------------------------------------------------------------------------------------

    async def save_tracked(self, repository: TrackedRepository) -> None:
        await self._execute(_UPSERT_TRACKED, sql.tracked_params(repository))

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        return await self._execute(_INSERT_TRACKED, sql.tracked_params(repository)) == 1

    async def get_tracked(self, key: str) -> TrackedRepository | None:
        rows = await self._db.fetch_statement(sql.select_tracked(key))
        return sql.tracked_of(rows[0]) if rows else None

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        return [sql.tracked_of(row) for row in await self._db.fetch_statement(sql.select_all_tracked())]

    async def remove_tracked(self, key: str) -> bool:
        return await self._execute(_DELETE_TRACKED, (key,)) == 1

    # --- leases -----------------------------------------------------------------------------------------------------

    async def hold_lease(self, name: str, holder: str, *, until: float) -> bool:
        return await self._execute(_HOLD_LEASE, (name, holder, until, self._db.clock.now())) == 1

    async def release_lease(self, name: str, holder: str) -> None:
        await self._execute(_RELEASE_LEASE, (name, holder))

    async def _execute(self, statement: str, params: Sequence[Any]) -> int:
        """Run one statement (autocommit: durable when it returns); the rows it changed."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(statement, clean(tuple(params)))
            return cursor.rowcount
