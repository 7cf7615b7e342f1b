"""The SQLite store's write side: records processing outcomes in one group-committed transaction.

The store shares the inbox's rows (`delivery_states`): recording an outcome also settles its delivery in the same
transaction, so the inbox's `settle` that follows finds nothing left to do (docs/adr/0012-ports-for-every-backend.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ghingest.adapters.sql import queries
from ghingest.adapters.sqlite.forward_queue import insert_forward_jobs
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ChangeOrder, ReleaseChange, ReleaseRecord, ReleaseState, fold, rebuild
from ghingest.core.states import DeliveryStatus
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.store import Outcome

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
_CHANGE = "INSERT INTO changes (kind, ref, at) VALUES (?, ?, ?)"
# Another hook (or a redelivery) sent a delivery id already recorded (docs/adr/0010-dedupe-key.md).
_SIGHTING = (
    "INSERT INTO delivery_sightings (delivery_id, hook_id, first_at, last_at, count, same_body, secret_index)"
    " VALUES (?, ?, ?, ?, 1, coalesce(? = (SELECT body FROM deliveries WHERE delivery_id = ?), 0), ?)"
    " ON CONFLICT (delivery_id, hook_id) DO UPDATE SET last_at = excluded.last_at, count = count + 1,"
    " same_body = same_body AND excluded.same_body, secret_index = excluded.secret_index"
)


class SqliteStore:
    def __init__(
        self,
        writer: SqliteWriter,
        changed: Notifier,
        forwards: Notifier | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._writer = writer
        self._changed = changed
        self._forwards = forwards  # woken when outcomes created forward jobs
        self._clock = clock

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = self._clock.now()
        await self._writer.run(lambda conn: record_outcomes(conn, outcomes, now))
        self._changed.notify()
        if self._forwards is not None and any(o.processed is not None and o.processed.forwards for o in outcomes):
            self._forwards.notify()

    async def record_sighting(self, delivery: IncomingDelivery, *, received_at: float) -> None:
        sighting = (delivery.delivery_id, delivery.hook_id or "", received_at, received_at, delivery.body,
                    delivery.delivery_id, delivery.secret_index)  # fmt: skip
        await self._writer.run(lambda conn: conn.execute(_SIGHTING, sighting))

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a write commits (the writer takes the write lock within its busy
        timeout)."""
        await self._writer.run(lambda _conn: None)


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
            processed.append((now, delivery.attempts + 1, delivery.seq))
        elif outcome.retry_at is not None:
            retried.append((delivery.attempts + 1, outcome.retry_at, outcome.error, delivery.seq))
        else:
            if outcome.fallback_event is not None:
                events.append(_event_row(delivery, outcome.fallback_event, DeliveryStatus.FAILED, outcome.error, now))
                feed.append(("event", delivery.delivery_id, now))
            failed.append((now, outcome.error, delivery.attempts + 1, delivery.seq))
    conn.executemany(_UPSERT_EVENT, events)
    conn.executemany(_MARK_PROCESSED, processed)
    conn.executemany(_MARK_RETRY, retried)
    conn.executemany(_MARK_FAILED, failed)
    conn.executemany(_CHANGE, feed)


# Attempts are set, not incremented: recording the same outcome twice (a redelivered claim) counts it once.
_MARK_PROCESSED = (
    "UPDATE delivery_states SET status = 'processed', processed_at = ?, error = NULL, attempts = ?,"
    " lease_until = 0 WHERE seq = ?"
)
_MARK_RETRY = "UPDATE delivery_states SET attempts = ?, next_attempt_at = ?, lease_until = 0, error = ? WHERE seq = ?"
_MARK_FAILED = (
    "UPDATE delivery_states SET status = 'failed', processed_at = ?, error = ?, attempts = ?,"
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
