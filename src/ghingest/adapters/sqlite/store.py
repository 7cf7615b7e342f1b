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
_CHANGE = "INSERT INTO changes (kind, ref, at) VALUES (?, ?, ?)"


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
    conn.executemany(_CHANGE, feed)


def _apply_release_change(conn: sqlite3.Connection, change: ReleaseChange, now: float) -> bool:
    """Fold one change into its release. A change not seen before folds into the current record (O(1)); a
    delivery applied before (reprocessing, or a redelivered claim) rebuilds the record from all of its changes,
    so reprocessing repairs a release whatever state its stored record was left in."""
    row = sql.change_row(change)
    if conn.execute(sql.INSERT_RELEASE_CHANGE, row).rowcount == 1:  # a change not seen before
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
    conn.execute(sql.REPLACE_RELEASE_CHANGE, sql.replace_params(row))
    record, first_seen_at = sql.rebuilt(conn.execute(sql.SELECT_CHANGES, (change.release_id,)).fetchall())
    conn.execute(_UPSERT_RELEASE, sql.upsert_params(record, first_seen_at=first_seen_at, now=now))
    return True
