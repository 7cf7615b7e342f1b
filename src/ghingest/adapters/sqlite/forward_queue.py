"""The SQLite forward queue: `forward_jobs` (the outbox), `forward_attempts` and `forward_stats`.

Jobs are created (`ghingest.adapters.sql.forwarding.INSERT_JOB`) inside the store's transaction that marks their
delivery processed, so a forward can never be lost between the two. Claims set `status = 'delivering'` and move
`next_attempt_at` to the lease's end, so a job whose forwarder died is simply due again when its lease runs out.
Every write goes through the single writer thread (group commit); reads use the query-only pool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ghingest.adapters.sql import forwarding as sql
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.forwarding import (
    AttemptResult,
    DestinationStats,
    ForwardJob,
    ForwardQueueCapabilities,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
)

_CLAIM = (
    "UPDATE forward_jobs SET status = 'delivering', next_attempt_at = ? WHERE id IN ("  # noqa: S608 - fixed text
    f" SELECT id FROM forward_jobs WHERE destination = ? AND {sql.ACTIVE} AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at LIMIT ?)"
    " RETURNING id, delivery_seq, delivery_id, destination, route, replay, attempts, received_at, first_attempt_at"
)
_RECORD = sql.RECORD.format(held="")


class SqliteForwardQueue:
    # One forwarder per database file (`ghingest serve`, or one `ghingest forwarder`): at its start, every lease
    # left is a crashed process's.
    capabilities = ForwardQueueCapabilities(single_forwarder=True)

    def __init__(self, writer: SqliteWriter, work: Notifier, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._writer = writer
        self._work = work
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

        def record(conn: sqlite3.Connection) -> None:
            for result in results:
                _record_attempt(conn, result)

        await self._writer.run(record)
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
        update = "UPDATE forward_jobs SET next_attempt_at = ? WHERE status = 'delivering'" + condition  # noqa: S608 - fixed text
        values = [self._clock.now(), *params]
        released: int = await self._writer.run(lambda conn: conn.execute(update, values).rowcount)
        if released:
            self._work.notify()
        return released

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        if not targets:
            return 0
        at = self._clock.now()

        def enqueue(conn: sqlite3.Connection) -> int:
            created = 0
            for seq, destination, route in targets:
                conn.execute(sql.SUPERSEDE, (seq, destination))
                created += conn.execute(sql.INSERT_REPLAY, (destination, route, destination, at, at, seq)).rowcount
            return created

        created: int = await self._writer.run(enqueue)
        self._work.notify()
        return created


class SqliteForwardLog:
    """Every attempt, per-destination counts, dead letters and replay selections, on the read pool."""

    def __init__(self, reader: SqliteReader) -> None:
        self._reader = reader

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        query, params = sql.replay_query(selection)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(query, tuple(params)).fetchall())
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    async def stats(self) -> Sequence[DestinationStats]:
        def load(conn: Connection) -> list[DestinationStats]:
            return sql.destination_stats(conn.exec_driver_sql(sql.STATUS_COUNTS), conn.exec_driver_sql(sql.TOTALS))

        return await self._reader.run(load)

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


def _record_attempt(conn: sqlite3.Connection, r: AttemptResult) -> None:
    row = conn.execute(_RECORD, sql.record_params(r)).fetchone()
    if row is None:
        return  # the job is not being delivered any more (its lease ran out and it went elsewhere)
    attempt, stats = sql.logged_params(r, *row)
    conn.execute(sql.ATTEMPT, attempt)
    conn.execute(sql.STATS, stats)
