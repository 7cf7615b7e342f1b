"""The SQLite read side: the read API's and the dashboard's queries, on the read pool (query-only connections)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ghingest.adapters.sql import migrate, queries
from ghingest.adapters.sql.where import Where
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.core.errors import StoreUnavailable
from ghingest.core.pagination import Page, decode_cursor, encode_cursor
from ghingest.core.processing import StoredDelivery
from ghingest.ports.reads import (
    DeliveryView,
    EventQuery,
    EventView,
    ReadCapabilities,
    ReleaseQuery,
    ReleaseView,
    ReprocessSelection,
)

# One row that touches every table the read side queries, and the schema's revision.
_READINESS = sa.text(
    "SELECT (SELECT version_num FROM alembic_version), (SELECT 1 FROM deliveries LIMIT 1),"
    " (SELECT 1 FROM events LIMIT 1), (SELECT 1 FROM releases LIMIT 1), (SELECT 1 FROM forward_jobs LIMIT 1)"
)
_TO_REPROCESS = (
    "SELECT d.seq, d.delivery_id, d.event, d.hook_id, d.content_kind, d.headers, d.body, d.received_at,"
    " d.secret_index, s.attempts FROM deliveries d JOIN delivery_states s ON s.seq = d.seq WHERE "
)


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
        expected = migrate.head_revision()
        if version != expected:
            raise StoreUnavailable(f"the schema is at revision {version}, not {expected}: run `ghingest db upgrade`")

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        where = Where()
        where.add("d.delivery_id = ?", selection.delivery_id)
        where.add("d.received_at >= ?", selection.since)
        where.when(selection.failed_only, "s.status = 'failed'")
        if after is not None:
            (last,) = decode_cursor(after, types=(int,))
            where.add("d.seq > ?", last)
        sql = _TO_REPROCESS + where.sql() + " ORDER BY d.seq LIMIT ?"
        params = [*where.params, limit + 1]
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql, tuple(params)).fetchall())
        deliveries = [queries.stored_delivery(row) for row in rows]
        if len(deliveries) > limit:
            return Page(items=deliveries[:limit], next_cursor=encode_cursor([deliveries[limit - 1].seq]))
        return Page(items=deliveries, next_cursor=None)

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None:
        def load(conn: Any) -> DeliveryView | None:
            row = conn.execute(queries.select_delivery(delivery_id)).first()
            if row is None:
                return None
            sightings = [queries.sighting(r) for r in conn.execute(queries.select_sightings(delivery_id))]
            return queries.delivery_view(row, sightings)

        return await self._reader.run(load)

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        rows = await self._reader.fetch_all(queries.select_events(query))
        views = [queries.event_view(row) for row in rows]
        return _page(views, queries.page_size(query.limit), queries.event_cursor)

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
        return _page(views, queries.page_size(query.limit), queries.release_cursor)

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        def load(conn: Any) -> list[str]:
            first = conn.execute(queries.select_repositories(text, limit=limit, contains=False))
            names: list[str] = [r[0] for r in first]
            if len(names) < limit and text:
                more = conn.execute(queries.select_repositories(text, limit=limit, contains=True))
                names += [r[0] for r in more if r[0] not in names][: limit - len(names)]
            return names

        return await self._reader.run(load)

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        rows = await self._reader.fetch_all(queries.select_newest_release_at(repository))
        value = rows[0][0] if rows else None
        return str(value) if value else None

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        rows = await self._reader.fetch_all(queries.select_releases_by_day(since, repository))
        return {str(row._mapping["day"]): int(row._mapping["n"]) for row in rows}


def _page(views: list[Any], size: int, cursor_of: Any) -> Page[Any]:
    if len(views) > size:
        return Page(items=views[:size], next_cursor=cursor_of(views[size - 1]))
    return Page(items=views, next_cursor=None)
