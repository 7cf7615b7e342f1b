"""The SQLite forward queue: `forward_jobs` (the outbox), `forward_attempts` and `forward_stats`.

Jobs are created (`ghingest.adapters.sql.forwarding.INSERT_JOB`) inside the store's transaction that marks their
delivery processed, so a forward can never be lost between the two. Claims set `status = 'delivering'` and move
`next_attempt_at` to the lease's end, so a job whose forwarder died is simply due again when its lease runs out.
Every write goes through the single writer thread (group commit); reads use the query-only pool. A write that moves
jobs (an attempt, a release, a replay) adds a `forward` change per delivery to the change feed in its transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ghingest.adapters.sql import forwarding as sql
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.store import INSERT_CHANGE
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.destination_health import WindowFigures, nearest_rank
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.forwarding import (
    AttemptResult,
    DestinationActivity,
    DestinationPause,
    DestinationStats,
    DestinationTest,
    ForwardJob,
    ForwardQueueCapabilities,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
    TargetDelivery,
)

_CLAIM = (
    "UPDATE forward_jobs SET status = 'delivering', next_attempt_at = ? WHERE id IN ("  # noqa: S608 - fixed text
    f" SELECT id FROM forward_jobs WHERE destination = ? AND {sql.ACTIVE} AND next_attempt_at <= ? AND {sql.NOT_PAUSED}"
    " ORDER BY next_attempt_at LIMIT ?)"
    " RETURNING id, delivery_seq, delivery_id, destination, route, replay, attempts, received_at, first_attempt_at"
)
_RECORD = sql.RECORD.format(held="")
_INSERT_REPLAY = sql.INSERT_REPLAY + " RETURNING delivery_id"
# SQLite has no percentile function: the value at the nearest rank, by an ordered read of the window's latencies.
_LATENCY_AT = (
    "SELECT latency FROM forward_attempts WHERE destination = ? AND started_at >= ? ORDER BY latency LIMIT 1 OFFSET ?"
)


class SqliteForwardQueue:
    # One forwarder per database file (`ghingest serve`, or one `ghingest forwarder`): at its start, every lease
    # left is a crashed process's.
    capabilities = ForwardQueueCapabilities(single_forwarder=True)

    def __init__(
        self,
        writer: SqliteWriter,
        reader: SqliteReader,
        work: Notifier,
        changed: Notifier,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._work = work
        self._changed = changed  # the change feed's wake-up
        self._clock = clock

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        at = self._clock.now()

        def claim(conn: sqlite3.Connection) -> list[ForwardJob]:
            rows = conn.execute(_CLAIM, (at + lease_seconds, destination, at, limit)).fetchall()
            if not rows:
                return []
            seqs = sorted({row[1] for row in rows})
            marks = ", ".join("?" * len(seqs))
            deliveries = {
                r[0]: r
                for r in conn.execute(
                    f"SELECT seq, event, content_kind, headers, body FROM deliveries WHERE seq IN ({marks})",  # noqa: S608
                    seqs,
                )
            }
            jobs = [sql.forward_job(row, *deliveries[row[1]][1:]) for row in rows]
            jobs.sort(key=lambda job: job.id)
            return jobs

        return await self._writer.run(claim, savepoint=False)

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return

        at = self._clock.now()

        def record(conn: sqlite3.Connection) -> None:
            moved = [_record_attempt(conn, result) for result in results]
            _note_forwards(conn, [delivery_id for delivery_id in moved if delivery_id is not None], at)

        await self._writer.run(record)
        self._changed.notify()
        if any(r.next_status is ForwardStatus.RETRY for r in results):
            self._work.notify()

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)

    async def release(self, job_ids: Sequence[int]) -> int:
        if not job_ids:
            return 0
        return await self._release(f" AND id IN ({', '.join('?' * len(job_ids))})", list(job_ids))

    async def recover(self) -> int:
        return await self._release("", [])

    async def _release(self, condition: str, params: list[Any]) -> int:
        update = (
            "UPDATE forward_jobs SET next_attempt_at = ? WHERE status = 'delivering'"  # noqa: S608 - fixed text
            + condition
            + " RETURNING delivery_id"
        )
        at = self._clock.now()

        def release(conn: sqlite3.Connection) -> int:
            delivery_ids = [row[0] for row in conn.execute(update, [at, *params]).fetchall()]
            _note_forwards(conn, delivery_ids, at)
            return len(delivery_ids)

        released: int = await self._writer.run(release)
        if released:
            self._changed.notify()
            self._work.notify()
        return released

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        if not targets:
            return 0
        at = self._clock.now()

        def enqueue(conn: sqlite3.Connection) -> int:
            replayed: list[str] = []  # the delivery id of each job created
            for seq, destination, route in targets:
                conn.execute(sql.SUPERSEDE, (seq, destination))
                rows = conn.execute(_INSERT_REPLAY, (destination, route, destination, at, at, seq)).fetchall()
                replayed += [row[0] for row in rows]
            _note_forwards(conn, replayed, at)
            return len(replayed)

        created: int = await self._writer.run(enqueue)
        if created:
            self._changed.notify()
        self._work.notify()
        return created

    async def pause(self, destination: str, *, by: str) -> DestinationPause:
        at = self._clock.now()
        row = await self._writer.run(lambda conn: conn.execute(sql.PAUSE, (destination, by, at)).fetchone())
        return sql.pause_of(row)

    async def resume(self, destination: str) -> DestinationPause | None:
        at = self._clock.now()

        def resume(conn: sqlite3.Connection) -> DestinationPause | None:
            row = conn.execute(sql.PAUSE_OF, (destination,)).fetchone()
            if row is None:
                return None
            pause = sql.pause_of(row)
            conn.execute(sql.UNPAUSE, (destination,))
            conn.execute(sql.CREDIT_PAUSE, (max(0.0, at - pause.paused_at), destination, at))
            return pause

        pause: DestinationPause | None = await self._writer.run(resume)
        if pause is not None:
            self._work.notify()
        return pause

    async def paused(self) -> Sequence[DestinationPause]:
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql.PAUSED).fetchall())
        return [sql.pause_of(row) for row in rows]

    async def record_test(self, test: DestinationTest) -> None:
        await self._writer.run(lambda conn: conn.execute(sql.RECORD_TEST, sql.ping_params(test)))


class SqliteForwardLog:
    """Every attempt, per-destination counts, dead letters and replay selections, on the read pool."""

    def __init__(self, reader: SqliteReader, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._reader = reader
        self._clock = clock

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        query, params = sql.replay_query(selection)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(query, tuple(params)).fetchall())
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    async def target_deliveries(self, seqs: Sequence[int]) -> Sequence[TargetDelivery]:
        if not seqs:
            return []
        query = sql.target_deliveries_query(seqs)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(query, tuple(seqs)).fetchall())
        return sql.target_deliveries(rows, seqs)

    async def stats(self) -> Sequence[DestinationStats]:
        def load(conn: Connection) -> list[DestinationStats]:
            return sql.destination_stats(conn.exec_driver_sql(sql.STATUS_COUNTS), conn.exec_driver_sql(sql.TOTALS))

        return await self._reader.run(load)

    async def activity(self, windows: Sequence[float], *, recent: int) -> Sequence[DestinationActivity]:
        now = self._clock.now()

        def load(conn: Connection) -> list[DestinationActivity]:
            out = []
            for name, error_at in conn.exec_driver_sql(sql.ACTIVE_DESTINATIONS).fetchall():
                figures = tuple(_window(conn, name, seconds, now) for seconds in windows)
                latest = conn.exec_driver_sql(sql.RECENT, (name, max(0, recent))).fetchall()
                recovered = None
                if error_at is not None:
                    recovered = conn.exec_driver_sql(sql.RECOVERED, (name, error_at)).scalar()
                out.append(sql.destination_activity(name, figures, latest, recovered))
            return out

        return await self._reader.run(load)

    async def tests(self) -> Sequence[DestinationTest]:
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql.TESTS).fetchall())
        return [sql.ping_of(row) for row in rows]

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        def load(conn: Connection) -> list[ForwardView]:
            seq = conn.exec_driver_sql(sql.SEQ_OF, (delivery_id,)).scalar()
            if seq is None:
                return []
            attempts = conn.exec_driver_sql(sql.ATTEMPTS_OF, (seq,)).fetchall()
            return sql.forward_views(conn.exec_driver_sql(sql.JOBS_OF, (seq,)), attempts)

        return await self._reader.run(load)

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        query, params = sql.dead_letters_query(destination, before_id, limit)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(query, tuple(params)).fetchall())
        return sql.forward_views(rows)

    async def dead_lettered_since(self, since: float) -> int:
        return int(await self._reader.run(lambda conn: conn.exec_driver_sql(sql.DEAD_SINCE, (since,)).scalar()) or 0)


def _window(conn: Connection, destination: str, seconds: float, now: float) -> WindowFigures:
    since = now - seconds
    counts = conn.exec_driver_sql(sql.WINDOW_COUNTS, (destination, since)).one()
    if not counts[0]:
        return sql.window_figures(seconds, counts, None, None)
    p50, p95 = (
        conn.exec_driver_sql(_LATENCY_AT, (destination, since, nearest_rank(counts[0], f))).scalar()
        for f in (0.5, 0.95)
    )
    return sql.window_figures(seconds, counts, p50, p95)


def _record_attempt(conn: sqlite3.Connection, r: AttemptResult) -> str | None:
    """Record one attempt; the delivery id of its job when it moved the job on."""
    row = conn.execute(_RECORD, sql.record_params(r)).fetchone()
    if row is None:
        return None  # the job is not being delivered any more (its lease ran out and it went elsewhere)
    attempt, stats = sql.logged_params(r, *row[:3])
    conn.execute(sql.ATTEMPT, attempt)
    conn.execute(sql.STATS, stats)
    return str(row[3])


def _note_forwards(conn: sqlite3.Connection, delivery_ids: Sequence[str], at: float) -> None:
    """A `forward` change per delivery among `delivery_ids`, in order (one per delivery and transaction)."""
    conn.executemany(INSERT_CHANGE, [("forward", delivery_id, at) for delivery_id in dict.fromkeys(delivery_ids)])
