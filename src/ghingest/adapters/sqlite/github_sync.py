"""What ghingest keeps of its conversations with GitHub's API, in SQLite: written by the writer (group commit),
read on the read pool (leases on the writer alone, whose one-at-a-time transactions make them atomic, also between
processes on the file). The statements are the shared ones (`ghingest.adapters.sql.github_sync`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ghingest.adapters.sql import github_sync as sql
from ghingest.adapters.sql.queries import chunks
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.reconcile import Gap, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_sync import gap_after, gap_cursor


class SqliteGitHubSyncState:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock

    # --- reconciliation -------------------------------------------------------------------------------------------

    async def gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> Mapping[str, Gap]:
        def load(conn: Any) -> dict[str, Gap]:
            found: dict[str, Gap] = {}
            for ids in chunks(delivery_ids):
                found |= {gap.delivery_id: gap for gap in map(sql.gap_of, conn.execute(sql.select_gaps_for(hook, ids)))}
            return found

        return await self._reader.run(load)

    async def save_gaps(self, gaps: Sequence[Gap]) -> None:
        rows = [sql.gap_params(gap) for gap in sql.unique_gaps(gaps)]
        if rows:
            await self._writer.run(lambda conn: conn.executemany(sql.UPSERT_GAP, rows))

    async def open_gaps(self, hook: str) -> Sequence[Gap]:
        rows = await self._reader.fetch_all(sql.select_open_gaps(hook))
        return [sql.gap_of(row) for row in rows]

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
        rows = await self._reader.fetch_all(sql.select_gaps(states=states, hook=hook, after=after, limit=size + 1))
        return page_of([sql.gap_of(row) for row in rows], size, gap_cursor)

    async def gap_counts(self) -> Mapping[GapState, int]:
        return sql.gap_counts_of(await self._reader.fetch_all(sql.select_gap_counts()))

    async def purge_gaps(self, *, before: float) -> int:
        return await self._writer.run(lambda conn: conn.execute(sql.PURGE_GAPS, (before, before)).rowcount)

    async def save_scan(self, scan: HookScan) -> None:
        params = sql.scan_params(scan)
        await self._writer.run(lambda conn: conn.execute(sql.UPSERT_SCAN, params))

    async def get_scan(self, hook: str) -> HookScan | None:
        rows = await self._reader.fetch_all(sql.select_scan(hook))
        return sql.scan_of(rows[0]) if rows else None

    async def list_scans(self) -> Sequence[HookScan]:
        return [sql.scan_of(row) for row in await self._reader.fetch_all(sql.select_scans())]

    # --- release tracking -------------------------------------------------------------------------------------------

    async def save_tracked(self, repository: TrackedRepository) -> None:
        params = sql.tracked_params(repository)
        await self._writer.run(lambda conn: conn.execute(sql.UPSERT_TRACKED, params))

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        params = sql.tracked_params(repository)
        return await self._writer.run(lambda conn: _changed(conn, sql.INSERT_TRACKED, params))

    async def get_tracked(self, key: str) -> TrackedRepository | None:
        rows = await self._reader.fetch_all(sql.select_tracked(key))
        return sql.tracked_of(rows[0]) if rows else None

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        return [sql.tracked_of(row) for row in await self._reader.fetch_all(sql.select_all_tracked())]

    async def remove_tracked(self, key: str) -> bool:
        return await self._writer.run(lambda conn: _changed(conn, sql.DELETE_TRACKED, (key,)))

    # --- leases -----------------------------------------------------------------------------------------------------

    async def hold_lease(self, name: str, holder: str, *, until: float) -> bool:
        params = (name, holder, until, self._clock.now())
        return await self._writer.run(lambda conn: _changed(conn, sql.HOLD_LEASE, params))

    async def release_lease(self, name: str, holder: str) -> None:
        await self._writer.run(lambda conn: conn.execute(sql.RELEASE_LEASE, (name, holder)))


def _changed(conn: sqlite3.Connection, statement: str, params: Sequence[Any]) -> bool:
    """Whether `statement` changed a row."""
    return conn.execute(statement, params).rowcount == 1
