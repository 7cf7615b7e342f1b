"""The SQLite read side: the read API's and the dashboard's queries, on the read pool (query-only connections)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ghingest.adapters.sql import migrate, queries
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.core.errors import StoreUnavailable
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.processing import StoredDelivery
from ghingest.ports.reads import (
    DeliveryView,
    EventQuery,
    EventView,
    HourCounts,
    ReadCapabilities,
    ReleaseQuery,
    ReleaseView,
    ReprocessSelection,
)

_READINESS = sa.text(queries.READINESS)


def _hour(column: Any) -> Any:
    """The hour (epoch seconds // 3600) of a time: SQLite's CAST truncates."""
    return sa.cast(column / queries.HOUR, sa.Integer)


class SqliteReads:
    capabilities = ReadCapabilities()

    def __init__(self, reader: SqliteReader) -> None:
        self._reader = reader

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the read side answers (its schema is the one this release expects)."""
        try:
            version = await self._reader.run(lambda conn: conn.execute(_READINESS).scalar())
        except Exception as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.__class__.__name__}") from None
        migrate.require_head(version)

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        sql, params = queries.reprocess_query(selection, after=after, limit=limit)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql, tuple(params)).fetchall())
        return queries.reprocess_page([queries.stored_delivery(row) for row in rows], limit)

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None:
        def load(conn: Any) -> DeliveryView | None:
            row = conn.execute(queries.select_delivery(delivery_id)).first()
            if row is None:
                return None
            sightings = [queries.sighting(r) for r in conn.execute(queries.select_sightings(delivery_id))]
            return queries.delivery_view(row, sightings)

        return await self._reader.run(load)

    async def hooks_seen(self, delivery_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        def load(conn: Any) -> dict[str, frozenset[str]]:
            rows = [row for ids in queries.chunks(delivery_ids) for row in conn.execute(queries.select_hooks_seen(ids))]
            return queries.hooks_seen_of(rows)

        return await self._reader.run(load)

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        def load(conn: Any) -> list[EventView]:
            many = True
            if queries.has_forward_filter(query):
                cap = queries.FORWARD_FILTER_MANY
                many = (conn.execute(queries.count_forward_matches(query, cap=cap)).scalar() or 0) >= cap
            views = [queries.event_view(row) for row in conn.execute(queries.select_events(query, many_forwards=many))]
            if not views:
                return views
            jobs = conn.execute(queries.select_forward_outcomes([v.seq for v in views])).fetchall()
            return queries.with_forwards(views, jobs)

        views = await self._reader.run(load)
        return page_of(views, page_size(query.limit), queries.event_cursor)

    async def deliveries_per_hour(self, *, since: float) -> Sequence[HourCounts]:
        def load(conn: Any) -> list[HourCounts]:
            outcomes = conn.execute(queries.select_outcomes_per_hour(since, _hour)).fetchall()
            waiting = conn.execute(queries.select_waiting_per_hour(since, _hour)).fetchall()
            return queries.hours_of(outcomes, waiting)

        return await self._reader.run(load)

    async def get_release(self, release_id: int) -> ReleaseView | None:
        def load(conn: Any) -> ReleaseView | None:
            row = conn.execute(queries.select_release(release_id)).first()
            if row is None:
                return None
            history = [queries.history_entry(r) for r in conn.execute(queries.select_release_changes(release_id))]
            return queries.release_view(row, history)

        return await self._reader.run(load)

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]:
        def load(conn: Any) -> Any:
            many = False
            if query.search and query.repository is None:
                cap = queries.SEARCH_MANY_MATCHES
                many = (conn.execute(queries.count_search_matches(query.search, cap=cap)).scalar() or 0) >= cap
            return conn.execute(queries.select_releases(query, many_matches=many)).fetchall()

        rows = await self._reader.run(load)
        views = [queries.release_view(row) for row in rows]
        return page_of(views, page_size(query.limit), queries.release_cursor)

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        def load(conn: Any) -> list[str]:
            first = conn.execute(queries.select_repositories(text, limit=limit, contains=False))
            names: list[str] = [r[0] for r in first]
            if len(names) < limit and text:
                more = conn.execute(queries.select_repositories(text, limit=limit, contains=True))
                return queries.typeahead(names, [r[0] for r in more], limit)
            return names

        return await self._reader.run(load)

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        rows = await self._reader.fetch_all(queries.select_newest_release_at(repository))
        return queries.newest_of(rows)

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        rows = await self._reader.fetch_all(queries.select_releases_by_day(since, repository))
        return queries.days_of(rows)
