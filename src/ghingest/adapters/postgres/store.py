"""The PostgreSQL store's write side: a batch of outcomes in one transaction, safe against concurrent writers.

Many workers (processes) record at once, so what SQLite's single writer gives for free is taken explicitly:

- **Releases.** Folding reads a release and writes it back: a transaction-scoped advisory lock per release
  (taken for the whole batch up front, in id order, so that two batches never wait for each other in a cycle)
  makes two workers folding changes of one release take turns; the second sees the first's commit.
- **Idempotence.** Events are upserted by delivery, release changes and forward jobs are inserted `ON CONFLICT
  DO NOTHING`: two transactions recording the same outcome at once create one event and one set of jobs.
- **The change feed.** Sequence values commit out of order: a reader following `seq > N` could pass a change
  whose transaction commits after a later one's. The change rows are therefore written last, under a
  transaction-scoped advisory lock (`FEED_LOCK`) held until the commit: change ids are allocated and committed
  in one order, so a reader never skips a late commit (docs/adr/0014-postgresql-backend.md).
- **A broker's inbox.** Beside a NATS inbox the store has not seen a delivery before its outcome: the raw
  delivery is recorded with it, under a seq of this database's own, and found again by its delivery id (a
  broker's sequence numbers restart with a new stream, and a requeued delivery comes back under a new one).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
import psycopg.errors

from ghingest.adapters.postgres.connection import CHANGES, FORWARDS, PostgresResources, clean, pyformat
from ghingest.adapters.postgres.inbox import WRITE_PROBE
from ghingest.adapters.sql import outcomes as sql
from ghingest.adapters.sql.forwarding import INSERT_JOB
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ReleaseChange, fold
from ghingest.ports.store import Outcome, StoreCapabilities

FEED_LOCK = 0x67686901  # pg_advisory_xact_lock(bigint): the change feed's commit order
RELEASE_LOCK = 0x6768  # pg_advisory_xact_lock(int, int): (RELEASE_LOCK, a release id folded into 31 bits)
_DEADLOCK_RETRIES = 3

_KNOWN = "SELECT delivery_id, seq FROM deliveries WHERE delivery_id = ANY(%s)"
_RECORD_DELIVERY = (
    "WITH d AS (INSERT INTO deliveries (delivery_id, event, hook_id, content_kind, headers, body, secret_index,"
    " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (delivery_id) DO NOTHING RETURNING seq)"
    " INSERT INTO delivery_states (seq, size) SELECT seq, %s FROM d"
)
_LOCK_RELEASES = (
    "SELECT pg_advisory_xact_lock(%s, k) FROM (SELECT DISTINCT k FROM unnest(%s::integer[]) AS k ORDER BY k) AS l"
)
_APPEND_CHANGES = (
    f"WITH l AS (SELECT pg_advisory_xact_lock({FEED_LOCK}))"  # noqa: S608 - fixed text
    " INSERT INTO changes (kind, ref, at) SELECT u.kind, u.ref, u.at FROM l,"
    " unnest(%s::text[], %s::text[], %s::double precision[]) WITH ORDINALITY AS u(kind, ref, at, n) ORDER BY u.n"
)
_UPSERT_RELEASE = pyformat(sql.UPSERT_RELEASE.format(least="least"))
_UPSERT_EVENT = pyformat(sql.UPSERT_EVENT)
_INSERT_RELEASE_CHANGE = pyformat(sql.INSERT_RELEASE_CHANGE)
_REPLACE_RELEASE_CHANGE = pyformat(sql.REPLACE_RELEASE_CHANGE)
_SELECT_RELEASES = pyformat(sql.SELECT_RELEASE.replace("id = ?", "id = ANY(?)")) + " FOR UPDATE"
_FIRST_SEEN = sql.RELEASE_COLUMNS.index("first_seen_at")
_SELECT_CHANGES = pyformat(sql.SELECT_CHANGES)
# Coverage for the whole batch: each release's stored changes with the content of one of the batch's changes of it,
# by the release's index and the content's digest (an array of the JSON texts themselves costs more to send than the
# rest of the batch; the digests go in binary). `sql.coverage` compares the contents found. A lateral subquery per
# (release, digest), kept from being flattened (OFFSET 0): as a plain join it is planned as a hash join over all of
# `release_changes` whenever the table's statistics are off.
_SAME_CONTENT = (
    "SELECT c.delivery_id, c.release_id, c.action, c.order_ts, c.order_seq, c.received_at, c.content"
    " FROM unnest(%s::bigint[], %b::text[]) AS u(release_id, digest) CROSS JOIN LATERAL"
    " (SELECT * FROM release_changes AS r WHERE r.release_id = u.release_id OFFSET 0) AS c"
    " WHERE encode(sha256(convert_to(c.content, 'UTF8')), 'hex') = u.digest"
)
_DELETE_CHANGES = "DELETE FROM release_changes WHERE delivery_id = ANY(%s)"
_FIRST_SEEN_AT = pyformat(sql.FIRST_SEEN)
_MARK_PROCESSED = pyformat(sql.MARK_PROCESSED)
_MARK_RETRY = pyformat(sql.MARK_RETRY)
_MARK_FAILED = pyformat(sql.MARK_FAILED)
_INSERT_JOB = pyformat(INSERT_JOB)
_SIGHTING = pyformat(sql.SIGHTING)


def release_lock_key(release_id: int) -> int:
    """A release id (GitHub's: up to 64 bits) folded into the advisory lock's 31-bit key; ids that share a key
    only take turns."""
    return (release_id ^ (release_id >> 31)) & 0x7FFFFFFF


class PostgresStore:
    capabilities = StoreCapabilities(foreign_inbox=True)

    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        now = self._db.clock.now()
        async with self._db.connection() as conn:
            for attempt in range(_DEADLOCK_RETRIES):
                try:
                    # Pipeline mode: statements whose results are not read go out without waiting for the server,
                    # so that a batch costs a few round trips, not one per statement.
                    async with conn.pipeline(), conn.transaction(), conn.cursor() as cursor:
                        ordered = await _numbered(cursor, outcomes)
                        batch = sql.plan(ordered, now)
                        await _record(cursor, ordered, batch, now)
                    break
                except psycopg.errors.DeadlockDetected:
                    if attempt == _DEADLOCK_RETRIES - 1:
                        raise
        self._db.notify_local(CHANGES, *([FORWARDS] if batch.jobs else []))

    async def record_sighting(self, delivery: IncomingDelivery, *, received_at: float) -> None:
        await self._db.fetch(_SIGHTING + " RETURNING 1", sql.sighting_params(delivery, received_at))

    async def ping(self) -> None:
        await self._db.scalar(WRITE_PROBE)


async def _record(cursor: psycopg.AsyncCursor[Any], outcomes: Sequence[Outcome], batch: sql.Batch, now: float) -> None:
    if release_ids := batch.release_ids:
        await cursor.execute(_LOCK_RELEASES, (RELEASE_LOCK, [release_lock_key(i) for i in release_ids]))
    changes = [entry for entry in batch.feed if isinstance(entry, ReleaseChange)]
    changed = await _apply_release_changes(cursor, changes, now) if changes else set()
    feed: list[tuple[str, str, float]] = []
    for entry in batch.feed:
        if not isinstance(entry, ReleaseChange):
            feed.append(entry)
        elif entry.delivery_id in changed:
            feed.append(("release", str(entry.release_id), now))
    for statement, rows in (
        (_INSERT_JOB, batch.jobs),
        (_UPSERT_EVENT, batch.events),
        (_MARK_PROCESSED, batch.processed),
        (_MARK_RETRY, batch.retried),
        (_MARK_FAILED, batch.failed),
    ):
        if rows:
            await cursor.executemany(statement, clean(rows))
    await append_changes(cursor, feed, *([FORWARDS] if batch.jobs else []))


async def append_changes(cursor: psycopg.AsyncCursor[Any], feed: Sequence[tuple[str, str, float]], *also: str) -> None:
    """The transaction's last statements: NOTIFY `CHANGES` when there are changes (and the channels `also` names),
    then the change rows (kind, ref, at) in order, under `FEED_LOCK`, which is held from here to the commit. Every
    transaction that writes changes ends with this."""
    channels = [*([CHANGES] if feed else []), *also]
    if channels:
        await cursor.execute("SELECT " + ", ".join(f"pg_notify('{c}', '')" for c in channels))
    if feed:
        kinds, refs, ats = zip(*feed, strict=True)
        await cursor.execute(_APPEND_CHANGES, (list(kinds), clean(list(refs)), list(ats)))


async def _numbered(cursor: psycopg.AsyncCursor[Any], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The outcomes as this database numbers their deliveries, in seq order (rows are locked in one order by
    every writer). A delivery it does not hold (its inbox is a broker's) is recorded first."""
    ids = [clean(o.delivery.delivery_id) for o in outcomes]
    await cursor.execute(_KNOWN, (ids,))
    seqs: dict[str, int] = {row[0]: row[1] for row in await cursor.fetchall()}
    missing = {delivery_id: o.delivery for delivery_id, o in zip(ids, outcomes, strict=True) if delivery_id not in seqs}
    if missing:
        await cursor.executemany(_RECORD_DELIVERY, [_delivery_row(d) for d in missing.values()])
        await cursor.execute(_KNOWN, (list(missing),))
        seqs.update({row[0]: row[1] for row in await cursor.fetchall()})
    numbered = [o.at_seq(seqs[delivery_id]) for delivery_id, o in zip(ids, outcomes, strict=True)]
    return sorted(numbered, key=lambda o: o.delivery.seq)


def _delivery_row(d: StoredDelivery) -> tuple[Any, ...]:
    headers = orjson.dumps(d.headers).decode("utf-8")
    row = (d.delivery_id, d.event, d.hook_id, d.content_kind.value, headers, d.body, d.secret_index)
    return (*clean(row), d.received_at, len(d.body))


def _digest(content: str) -> str:
    """What `_SAME_CONTENT` compares a stored change's content with."""
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


async def _apply_release_changes(
    cursor: psycopg.AsyncCursor[Any], changes: Sequence[ReleaseChange], now: float
) -> set[str]:
    """Fold a batch's release changes into their releases (the releases' advisory locks are held), as the SQLite
    store does one change at a time (`ghingest.adapters.sqlite.store`), in a few round trips for the whole batch:
    the releases and the stored changes with the content of one of the batch's read at once (coverage,
    docs/adr/0019-release-sources.md: one query by the releases' index for the batch, in the releases' round
    trip), the change rows in one pipeline, folded here, written back in one pipeline. A poll change a webhook
    change covers writes no row, and a webhook change deletes the rows of the poll changes it covers; a delivery
    applied before (reprocessing, a redelivered claim), or a release that lost a row, is rebuilt from all of its
    changes. Returns the delivery ids of the changes that changed their release (each gets a feed entry)."""
    rows = [clean(sql.change_row(change)) for change in changes]
    pairs = sorted({(c.release_id, _digest(row[6])) for c, row in zip(changes, rows, strict=True)})
    async with cursor.connection.cursor() as coverage:
        await coverage.execute(_SAME_CONTENT, ([p[0] for p in pairs], [p[1] for p in pairs]))
        await cursor.execute(_SELECT_RELEASES, (sorted({c.release_id for c in changes}),))
        same = {row[0]: sql.change_of(row) for row in await coverage.fetchall()}
        stored = {row[0]: row for row in await cursor.fetchall()}
        cover = sql.coverage(same.values(), changes)
        gone = sorted((cover.covered & same.keys()) | cover.dropped)  # rows that are no longer history
        if gone:  # (on this cursor: the results of the change rows' inserts are read from the other)
            await coverage.execute(_DELETE_CHANGES, (gone,))
    kept = [(change, row) for change, row in zip(changes, rows, strict=True) if row[0] not in cover.covered]
    inserted: set[str] = set()
    if kept:
        await cursor.executemany(
            _INSERT_RELEASE_CHANGE + " RETURNING delivery_id", [r for _, r in kept], returning=True
        )
        while True:
            inserted.update(row[0] for row in await cursor.fetchall())
            if not cursor.nextset():
                break
    replaced = [row for _, row in kept if row[0] not in inserted]
    if replaced:
        await cursor.executemany(_REPLACE_RELEASE_CHANGE, [sql.replace_params(row) for row in replaced])
    rebuilt_ids = sorted(
        {change.release_id for change, row in kept if row[0] not in inserted} | {same[d].release_id for d in gone}
    )
    stored = {release_id: row for release_id, row in stored.items() if release_id not in rebuilt_ids}
    current = dict(stored)
    changed: set[str] = set()
    for change, _ in kept:
        if change.release_id in rebuilt_ids:
            continue
        row = current.get(change.release_id)
        if row is None:
            record, first_seen_at = fold(None, change), change.received_at
        else:
            record, first_seen_at = fold(sql.record_of(row), change), sql.first_seen(row, change)
            if not sql.changed_columns(row, record, first_seen_at=first_seen_at, now=now):
                continue  # an older change: its history entry is recorded, the record stays as it is
        current[change.release_id] = sql.release_values(record, first_seen_at=first_seen_at)
        changed.add(change.delivery_id)
    upserts = [
        sql.upsert_params(sql.record_of(row), first_seen_at=row[_FIRST_SEEN], now=now)
        for release_id, row in current.items()
        if row is not stored.get(release_id)
    ]
    taken_out = set(gone)
    for release_id in rebuilt_ids:
        await cursor.execute(_SELECT_CHANGES, (release_id,))
        record, first_seen_at = sql.rebuilt(await cursor.fetchall())
        upserts.append(sql.upsert_params(record, first_seen_at=first_seen_at, now=now))
        changed.update(
            c.delivery_id
            for c in changes
            if c.release_id == release_id and (c.delivery_id not in cover.covered or c.delivery_id in taken_out)
        )
    if upserts:
        await cursor.executemany(_UPSERT_RELEASE, clean(upserts))
    if cover.covered:  # no change of their releases; only when they were first seen
        seen = [(c.received_at, c.release_id, c.received_at) for c in changes if c.delivery_id in cover.covered]
        await cursor.executemany(_FIRST_SEEN_AT, seen)
    return changed
