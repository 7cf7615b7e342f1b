"""The SQLite store's write side: records processing outcomes in one group-committed transaction.

The store shares the inbox's rows (`delivery_states`): recording an outcome also settles its delivery in the same
transaction, so the inbox's `settle` that follows finds nothing left to do (docs/adr/0012-ports-for-every-backend.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ghingest.adapters.sql import outcomes as sql
from ghingest.adapters.sql.forwarding import INSERT_JOB
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.releases import ReleaseChange, fold
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.store import Outcome, StoreCapabilities

_UPSERT_RELEASE = sql.UPSERT_RELEASE.format(least="min")
INSERT_CHANGE = "INSERT INTO changes (kind, ref, at) VALUES (?, ?, ?)"


class SqliteStore:
    # Only behind its own inbox (the same file): the embedded profile. Its write path assumes the inbox recorded
    # each delivery, which saves the lookup by delivery id that a store behind a broker's inbox needs.
    capabilities = StoreCapabilities(foreign_inbox=False)

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
        sighting = sql.sighting_params(delivery, received_at)
        await self._writer.run(lambda conn: conn.execute(sql.SIGHTING, sighting))

    async def ping(self) -> None:
        """Raise `StoreUnavailable` unless a write commits (the writer takes the write lock within its busy
        timeout)."""
        await self._writer.run(lambda _conn: None)


# --- the transaction that records a batch of outcomes ----------------------------------------------------------


def record_outcomes(conn: sqlite3.Connection, outcomes: Sequence[Outcome], now: float) -> None:
    """Record a batch: events, statuses and change-feed rows go in one statement each (executemany); releases
    fold one change at a time; forward jobs (the outbox) commit with the processed status."""
    batch = sql.plan(outcomes, now)
    feed: list[tuple[str, str, float]] = []
    for entry in batch.feed:
        if not isinstance(entry, ReleaseChange):
            feed.append(entry)
        elif _apply_release_change(conn, entry, now):
            feed.append(("release", str(entry.release_id), now))
    conn.executemany(INSERT_JOB, batch.jobs)
    conn.executemany(sql.UPSERT_EVENT, batch.events)
    conn.executemany(sql.MARK_PROCESSED, batch.processed)
    conn.executemany(sql.MARK_RETRY, batch.retried)
    conn.executemany(sql.MARK_FAILED, batch.failed)
    conn.executemany(INSERT_CHANGE, feed)


def _apply_release_change(conn: sqlite3.Connection, change: ReleaseChange, now: float) -> bool:
    """Fold one change into its release; whether the release changed (a feed entry). A change not seen before
    folds into the current record (O(1)); a delivery applied before (reprocessing, or a redelivered claim)
    rebuilds the record from all of its changes, so reprocessing repairs a release whatever state its stored record
    was left in. Coverage (docs/adr/0019-release-sources.md) costs one query by the release's index per change: a
    poll change a webhook change covers writes no change row (one written before is deleted, and the release
    rebuilt); a webhook change that covers stored poll changes deletes their rows and rebuilds the release."""
    row = sql.change_row(change)
    same = [sql.change_of(r) for r in conn.execute(sql.SELECT_SAME_CONTENT, (change.release_id, row[6]))]
    cover = sql.coverage(same, [change])
    if cover.covered:
        if conn.execute(sql.DELETE_CHANGE, (change.delivery_id,)).rowcount == 1:  # it was history until now
            return _rebuild(conn, change.release_id, now)
        conn.execute(sql.FIRST_SEEN, (change.received_at, change.release_id, change.received_at))
        return False
    conn.executemany(sql.DELETE_CHANGE, [(delivery_id,) for delivery_id in sorted(cover.dropped)])
    inserted = conn.execute(sql.INSERT_RELEASE_CHANGE, row).rowcount == 1
    if inserted and not cover.dropped:  # a change not seen before
        current = conn.execute(sql.SELECT_RELEASE, (change.release_id,)).fetchone()
        if current is None:
            params = sql.upsert_params(fold(None, change), first_seen_at=change.received_at, now=now)
            conn.execute(_UPSERT_RELEASE, params)
            return True
        record = fold(sql.record_of(current), change)
        changed = sql.changed_columns(current, record, first_seen_at=sql.first_seen(current, change), now=now)
        if not changed:
            return False  # an older change: its history entry is recorded, the record stays as it is
        conn.execute(*sql.update_release(changed, record.release_id))
        return True
    if not inserted:
        conn.execute(sql.REPLACE_RELEASE_CHANGE, sql.replace_params(row))
    return _rebuild(conn, change.release_id, now)


def _rebuild(conn: sqlite3.Connection, release_id: int, now: float) -> bool:
    record, first_seen_at = sql.rebuilt(conn.execute(sql.SELECT_CHANGES, (release_id,)).fetchall())
    conn.execute(_UPSERT_RELEASE, sql.upsert_params(record, first_seen_at=first_seen_at, now=now))
    return True
