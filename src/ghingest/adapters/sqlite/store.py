"""The SQLite store: records processing outcomes in one group-committed transaction, and answers queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from ghingest.adapters.sql import migrate, queries
from ghingest.adapters.sqlite._where import Where
from ghingest.adapters.sqlite.forward_queue import insert_forward_jobs
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.errors import StoreUnavailable
from ghingest.core.events import EventRecord
from ghingest.core.pagination import Page
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ChangeOrder, ReleaseChange, ReleaseRecord, ReleaseState, fold, rebuild
from ghingest.core.states import DeliveryStatus
from ghingest.ports import (
    DeliveryView,
    EventQuery,
    EventView,
    Outcome,
    ReleaseQuery,
    ReleaseView,
    ReprocessSelection,
)

_UPSERT_EVENT = (
    "INSERT INTO events (seq, delivery_id, event, action, repository, organization, sender, installation_id,"
    " hook_id, status, error, received_at, processed_at, shape_warning)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (seq) DO UPDATE SET event = excluded.event, action = excluded.action,"
    " repository = excluded.repository, organization = excluded.organization, sender = excluded.sender,"
    " installation_id = excluded.installation_id, hook_id = excluded.hook_id, status = excluded.status,"
    " error = excluded.error, processed_at = excluded.processed_at, shape_warning = excluded.shape_warning"
)
_INSERT_RELEASE_CHANGE = (
    "INSERT INTO release_changes (delivery_id, release_id, action, order_ts, order_seq, received_at, content)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING"
)
_REPLACE_RELEASE_CHANGE = (
    "UPDATE release_changes SET release_id = ?, action = ?, order_ts = ?, order_seq = ?, content = ?"
    " WHERE delivery_id = ?"
)
_UPSERT_RELEASE = (
    "INSERT INTO releases (id, repository, tag, name, author_login, author_avatar_url, draft, prerelease,"
    " created_at, published_at, html_url, body, state, sort_at, content_ts, content_seq, first_seen_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET repository = excluded.repository, tag = excluded.tag,"
    " name = excluded.name, author_login = excluded.author_login,"
    " author_avatar_url = excluded.author_avatar_url, draft = excluded.draft, prerelease = excluded.prerelease,"
    " created_at = excluded.created_at, published_at = excluded.published_at, html_url = excluded.html_url,"
    " body = excluded.body, state = excluded.state, sort_at = excluded.sort_at,"
    " content_ts = excluded.content_ts, content_seq = excluded.content_seq,"
    " first_seen_at = min(releases.first_seen_at, excluded.first_seen_at), updated_at = excluded.updated_at"
)
_SELECT_CHANGES = (
    "SELECT delivery_id, release_id, action, order_ts, order_seq, received_at, content FROM release_changes"
    " WHERE release_id = ?"
)
_REPROCESS = (
    "UPDATE delivery_states SET status = 'received', attempts = 0, next_attempt_at = 0, lease_until = 0, error = NULL"
    " WHERE seq IN (SELECT d.seq FROM deliveries d JOIN delivery_states s ON s.seq = d.seq WHERE "
)
_CHANGE = "INSERT INTO changes (kind, ref, at) VALUES (?, ?, ?)"
# One row that touches every table the read side queries, and the schema's revision.
_READINESS = sa.text(
    "SELECT (SELECT version_num FROM alembic_version), (SELECT 1 FROM deliveries LIMIT 1),"
    " (SELECT 1 FROM events LIMIT 1), (SELECT 1 FROM releases LIMIT 1), (SELECT 1 FROM forward_jobs LIMIT 1)"
)


class SqliteStore:
    def __init__(
        self, writer: SqliteWriter, reader: SqliteReader, changed: Notifier, forwards: Notifier | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._changed = changed
        self._forwards = forwards  # woken when outcomes created forward jobs

    # --- writes -----------------------------------------------------------------------------------------------

    async def record_outcomes(self, outcomes: Sequence[Outcome], *, now: float) -> None:
        if not outcomes:
            return
        await self._writer.run(lambda conn: record_outcomes(conn, outcomes, now))
        self._changed.notify()
        if self._forwards is not None and any(o.processed is not None and o.processed.forwards for o in outcomes):
            self._forwards.notify()

    async def mark_for_reprocess(self, selection: ReprocessSelection) -> int:
        where = Where()
        where.add("d.delivery_id = ?", selection.delivery_id)
        where.add("d.received_at >= ?", selection.since)
        where.when(selection.failed_only, "s.status = 'failed'")
        sql, params = _REPROCESS + where.sql() + ")", where.params
        count: int = await self._writer.run(lambda conn: conn.execute(sql, params).rowcount)
        return count

    # --- reads ------------------------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers the read side's queries (its schema is the one this
        release expects) and commits a write (the writer takes the write lock within its busy timeout)."""
        try:
            version = await self._reader.run(lambda conn: conn.execute(_READINESS).scalar())
        except Exception as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.__class__.__name__}") from None
        expected = migrate.head_revision()
        if version != expected:
            raise StoreUnavailable(f"the schema is at revision {version}, not {expected}: run `ghingest db upgrade`")
        await self._writer.run(lambda _conn: None)

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


# --- the transaction that records a batch of outcomes ----------------------------------------------------------


def record_outcomes(conn: sqlite3.Connection, outcomes: Sequence[Outcome], now: float) -> None:
    """Record a batch: events, statuses and change-feed rows go in one statement each (executemany); releases
    fold one change at a time; forward jobs (the outbox) commit with the processed status."""
    events: list[tuple[Any, ...]] = []
    processed: list[tuple[Any, ...]] = []
    retried: list[tuple[Any, ...]] = []
    failed: list[tuple[Any, ...]] = []
    feed: list[tuple[str, str, float]] = []
    for outcome in outcomes:
        delivery = outcome.delivery
        if outcome.processed is not None:
            events.append(_event_row(delivery, outcome.processed.event, DeliveryStatus.PROCESSED, None, now))
            feed.append(("event", delivery.delivery_id, now))
            release = outcome.processed.release
            if release is not None and _apply_release_change(conn, release, now):
                feed.append(("release", str(release.release_id), now))
            if outcome.processed.forwards:
                insert_forward_jobs(
                    conn,
                    delivery_seq=delivery.seq,
                    delivery_id=delivery.delivery_id,
                    received_at=delivery.received_at,
                    targets=outcome.processed.forwards,
                    at=now,
                )
            processed.append((now, delivery.seq))
        elif outcome.retry_at is not None:
            retried.append((outcome.retry_at, outcome.error, delivery.seq))
        else:
            if outcome.fallback_event is not None:
                events.append(_event_row(delivery, outcome.fallback_event, DeliveryStatus.FAILED, outcome.error, now))
                feed.append(("event", delivery.delivery_id, now))
            failed.append((now, outcome.error, delivery.seq))
    conn.executemany(_UPSERT_EVENT, events)
    conn.executemany(_MARK_PROCESSED, processed)
    conn.executemany(_MARK_RETRY, retried)
    conn.executemany(_MARK_FAILED, failed)
    conn.executemany(_CHANGE, feed)


_MARK_PROCESSED = (
    "UPDATE delivery_states SET status = 'processed', processed_at = ?, error = NULL, attempts = attempts + 1,"
    " lease_until = 0 WHERE seq = ?"
)
_MARK_RETRY = (
    "UPDATE delivery_states SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0, error = ? WHERE seq = ?"
)
_MARK_FAILED = (
    "UPDATE delivery_states SET status = 'failed', processed_at = ?, error = ?, attempts = attempts + 1,"
    " lease_until = 0 WHERE seq = ?"
)


def _event_row(
    delivery: StoredDelivery, event: EventRecord, status: DeliveryStatus, error: str | None, now: float
) -> tuple[Any, ...]:
    return (
        delivery.seq,
        event.delivery_id,
        event.event,
        event.action,
        event.repository,
        event.organization,
        event.sender,
        event.installation_id,
        event.hook_id,
        status.value,
        error,
        delivery.received_at,
        now,
        event.shape_warning,
    )


def _apply_release_change(conn: sqlite3.Connection, change: ReleaseChange, now: float) -> bool:
    """Fold one change into its release. A change not seen before folds into the current record (O(1)); a
    delivery applied before (reprocessing, or a redelivered claim) rebuilds the record from all of its changes,
    so reprocessing repairs a release whatever state its stored record was left in."""
    content = orjson.dumps(change.content).decode("utf-8")
    row = (
        change.delivery_id,
        change.release_id,
        change.action,
        change.order.timestamp,
        change.order.seq,
        change.received_at,
        content,
    )
    if conn.execute(_INSERT_RELEASE_CHANGE, row).rowcount == 1:  # a change not seen before
        current = conn.execute(_SELECT_RELEASE, (change.release_id,)).fetchone()
        if current is None:
            _write_release(conn, fold(None, change), first_seen_at=change.received_at, now=now)
            return True
        record = fold(_record_of(current), change)
        return _update_release(conn, current, record, first_seen_at=min(current[-1], change.received_at), now=now)
    conn.execute(_REPLACE_RELEASE_CHANGE, (*row[1:5], content, change.delivery_id))
    stored = conn.execute(_SELECT_CHANGES, (change.release_id,)).fetchall()
    changes = [queries.release_change_of(dict(zip(_CHANGE_COLUMNS, r, strict=True))) for r in stored]
    changes.sort(key=lambda c: (c.order, c.delivery_id))
    _write_release(conn, rebuild(changes), first_seen_at=min(c.received_at for c in changes), now=now)
    return True


_RELEASE_COLUMNS = (
    "id", "repository", "tag", "name", "author_login", "author_avatar_url", "draft", "prerelease", "created_at",
    "published_at", "html_url", "body", "state", "content_ts", "content_seq", "first_seen_at",
)  # fmt: skip
_SELECT_RELEASE = f"SELECT {', '.join(_RELEASE_COLUMNS)} FROM releases WHERE id = ?"  # noqa: S608 - fixed columns


def _record_of(row: Any) -> ReleaseRecord:
    """The stored record, without its history: `fold` needs only state, content and order for a new change."""
    m = dict(zip(_RELEASE_COLUMNS, row, strict=True))
    return ReleaseRecord(
        release_id=m["id"],
        state=ReleaseState(m["state"]),
        content=queries.content_of(m),
        content_order=ChangeOrder(m["content_ts"], m["content_seq"]),
        history=(),
    )


_CHANGE_COLUMNS = ("delivery_id", "release_id", "action", "order_ts", "order_seq", "received_at", "content")


def _release_values(record: ReleaseRecord, *, first_seen_at: float) -> tuple[Any, ...]:
    """The stored columns of a record, in `_RELEASE_COLUMNS` order."""
    c = record.content
    return (
        record.release_id,
        c.repository,
        c.tag,
        c.name,
        c.author_login,
        c.author_avatar_url,
        c.draft,
        c.prerelease,
        c.created_at,
        c.published_at,
        c.html_url,
        c.body,
        record.state.value,
        record.content_order.timestamp,
        record.content_order.seq,
        first_seen_at,
    )


def _write_release(conn: sqlite3.Connection, record: ReleaseRecord, *, first_seen_at: float, now: float) -> None:
    values = _release_values(record, first_seen_at=first_seen_at)
    conn.execute(_UPSERT_RELEASE, (*values[:13], queries.sort_at(record.content), *values[13:], now))


def _update_release(
    conn: sqlite3.Connection, current: Any, record: ReleaseRecord, *, first_seen_at: float, now: float
) -> bool:
    """Write only the columns that changed: an unchanged indexed column (sort time, repository, state) costs no
    index maintenance, and unchanged text no search-index update."""
    values = _release_values(record, first_seen_at=first_seen_at)
    changed = {
        name: new
        for name, old, new in zip(_RELEASE_COLUMNS, current, values, strict=True)
        if old != new and not (isinstance(new, bool) and bool(old) == new)
    }
    if not changed:
        return False  # an older change: its history entry is recorded, the record stays as it is
    old_sort_at = current[_RELEASE_COLUMNS.index("published_at")] or current[_RELEASE_COLUMNS.index("created_at")]
    if (sort_at := queries.sort_at(record.content)) != (old_sort_at or ""):
        changed["sort_at"] = sort_at
    changed["updated_at"] = now
    assignments = ", ".join(f"{name} = ?" for name in changed)  # names come from _RELEASE_COLUMNS only
    conn.execute(f"UPDATE releases SET {assignments} WHERE id = ?", (*changed.values(), record.release_id))  # noqa: S608
    return True
