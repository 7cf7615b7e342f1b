"""The PostgreSQL read side: the shared SQLAlchemy Core queries (`ghingest.adapters.sql.queries`) compiled for
PostgreSQL, with the release search on the generated `tsvector` column `releases.search` (GIN index) and the
repository typeahead on a trigram index (migration 0010)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from ghingest.adapters.postgres.connection import PostgresResources, pyformat
from ghingest.adapters.sql import migrate, queries
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


def search_condition(text: str) -> sa.ColumnElement[bool]:
    """A user's search text as a condition on `releases.search`: every word must match, the last one as a prefix
    (as SQLite's `queries.fts_query` has it). Each word, accents folded, becomes one quoted `to_tsquery` operand
    (quoted after folding: folding can make quotes), so that no character of it is an operator; PostgreSQL splits
    and normalises it as it does the indexed text (a word of several lexemes becomes a phrase)."""
    words = text.replace("\x00", " ").split()
    if not words:
        return sa.false()
    query: Any = None
    for n, word in enumerate(words):
        folded = sa.func.ghingest_unaccent(word)
        escaped = sa.func.replace(sa.func.replace(folded, "\\", "\\\\"), "'", "''")
        quoted = sa.func.concat("'", escaped, "':*" if n == len(words) - 1 else "'")
        operand = sa.func.to_tsquery(_SIMPLE, quoted)
        query = operand if query is None else query.op("&&")(operand)
    return sa.literal_column("releases.search").bool_op("@@")(query)


_SIMPLE: Any = sa.literal_column("'simple'::regconfig")


def _count(rows: Sequence[Any]) -> int:
    return int(rows[0][0]) if rows else 0


def _hour(column: Any) -> Any:
    """The hour (epoch seconds // 3600) of a time: PostgreSQL's CAST rounds, `floor` does not."""
    return sa.func.floor(column / queries.HOUR)


class PostgresReads:
    capabilities = ReadCapabilities(search=True, repository_contains=True, release_chart=True)

    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the read side answers (its schema is the one this release expects)."""
        try:
            version = await self._db.scalar(queries.READINESS)
        except StoreUnavailable:
            raise
        except Exception as exc:  # no such table (not migrated): the store cannot be read
            raise StoreUnavailable(f"the store cannot be read: {exc.__class__.__name__}") from None
        migrate.require_head(version)

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        sql, params = queries.reprocess_query(selection, after=after, limit=limit)
        rows = await self._db.fetch(pyformat(sql), params)
        return queries.reprocess_page([queries.stored_delivery(row) for row in rows], limit)

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None:
        rows = await self._db.fetch_statement(queries.select_delivery(delivery_id))
        if not rows:
            return None
        sightings = [queries.sighting(r) for r in await self._db.fetch_statement(queries.select_sightings(delivery_id))]
        return queries.delivery_view(rows[0], sightings)

    async def hooks_seen(self, delivery_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        rows: list[Any] = []
        for ids in queries.chunks(delivery_ids):
            rows += await self._db.fetch_statement(queries.select_hooks_seen(ids))
        return queries.hooks_seen_of(rows)

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        many = True
        if queries.has_forward_filter(query):
            cap = queries.FORWARD_FILTER_MANY
            many = _count(await self._db.fetch_statement(queries.count_forward_matches(query, cap=cap))) >= cap
        rows = await self._db.fetch_statement(queries.select_events(query, many_forwards=many))
        views = [queries.event_view(row) for row in rows]
        if views:
            jobs = await self._db.fetch_statement(queries.select_forward_outcomes([v.seq for v in views]))
            views = queries.with_forwards(views, [tuple(row) for row in jobs])
        return page_of(views, page_size(query.limit), queries.event_cursor)

    async def deliveries_per_hour(self, *, since: float) -> Sequence[HourCounts]:
        outcomes = await self._db.fetch_statement(queries.select_outcomes_per_hour(since, _hour))
        waiting = await self._db.fetch_statement(queries.select_waiting_per_hour(since, _hour))
        return queries.hours_of([tuple(r) for r in outcomes], [tuple(r) for r in waiting])

    async def get_release(self, release_id: int) -> ReleaseView | None:
        rows = await self._db.fetch_statement(queries.select_release(release_id))
        if not rows:
            return None
        changes = await self._db.fetch_statement(queries.select_release_changes(release_id))
        return queries.release_view(rows[0], [queries.history_entry(r) for r in changes])

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]:
        rows = await self._db.fetch_statement(queries.select_releases(query, search=search_condition))
        views = [queries.release_view(row) for row in rows]
        return page_of(views, page_size(query.limit), queries.release_cursor)

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        first = await self._db.fetch_statement(queries.select_repositories(text, limit=limit, contains=False))
        names: list[str] = [r[0] for r in first]
        if len(names) < limit and text:
            statement = queries.select_repositories(text, limit=limit, contains=True, ilike=True)
            more = await self._db.fetch_statement(statement)
            return queries.typeahead(names, [r[0] for r in more], limit)
        return names

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        rows = await self._db.fetch_statement(queries.select_newest_release_at(repository))
        return queries.newest_of(rows)

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        rows = await self._db.fetch_statement(queries.select_releases_by_day(since, repository))
        return queries.days_of(rows)
