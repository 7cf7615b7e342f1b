"""The SQLite forward queue: `forward_jobs` (the outbox), `forward_attempts` and `forward_stats`.

Jobs are created by `insert_forward_jobs` inside the store's transaction that marks their delivery processed, so a
forward can never be lost between the two. Claims set `status = 'delivering'` and move `next_attempt_at` to the
lease's end, so a job whose forwarder died is simply due again when its lease runs out. Every write goes through
the single writer thread (group commit); reads use the query-only pool.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from ghingest.adapters.sqlite._where import Where
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.delivery import ContentKind
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import ForwardTarget
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.forwarding import (
    AttemptResult,
    AttemptView,
    DestinationStats,
    ForwardJob,
    ForwardQueueCapabilities,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
)

_ACTIVE = "status IN ('pending', 'retry', 'delivering')"  # the very text of ix_forward_jobs_due's condition

_INSERT_JOB = (
    "INSERT INTO forward_jobs (delivery_seq, delivery_id, destination, route, generation, replay, status,"
    " received_at, created_at, next_attempt_at) VALUES (?, ?, ?, ?, 0, 0, 'pending', ?, ?, ?)"
    " ON CONFLICT (delivery_seq, destination, generation) DO NOTHING"
)
_CLAIM = (
    "UPDATE forward_jobs SET status = 'delivering', next_attempt_at = ? WHERE id IN ("  # noqa: S608 - fixed text
    f" SELECT id FROM forward_jobs WHERE destination = ? AND {_ACTIVE} AND next_attempt_at <= ?"
    " ORDER BY next_attempt_at LIMIT ?)"
    " RETURNING id, delivery_seq, delivery_id, destination, route, replay, attempts, received_at, first_attempt_at"
)
_RECORD = (
    "UPDATE forward_jobs SET status = ?, attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?),"
    " last_attempt_at = ?, last_status_code = ?, last_error = ?, next_attempt_at = coalesce(?, next_attempt_at),"
    " completed_at = ? WHERE id = ? AND status = 'delivering' RETURNING delivery_seq, attempts, replay"
)
_ATTEMPT = (
    "INSERT INTO forward_attempts (job_id, delivery_seq, destination, number, replay, started_at, latency,"
    " status_code, outcome, error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_STATS = (
    "INSERT INTO forward_stats (destination, attempts, delivered, failed, last_attempt_at, last_success_at,"
    " last_error, last_error_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE SET"
    " attempts = attempts + 1, delivered = delivered + excluded.delivered, failed = failed + excluded.failed,"
    " last_attempt_at = excluded.last_attempt_at,"
    " last_success_at = coalesce(excluded.last_success_at, last_success_at),"
    " last_error = coalesce(excluded.last_error, last_error),"
    " last_error_at = coalesce(excluded.last_error_at, last_error_at)"
)
_SUPERSEDE = (
    "UPDATE forward_jobs SET status = 'replayed' WHERE delivery_seq = ? AND destination = ? AND status = 'dead'"
)
_INSERT_REPLAY = (
    "INSERT INTO forward_jobs (delivery_seq, delivery_id, destination, route, generation, replay, status,"
    " received_at, created_at, next_attempt_at)"
    " SELECT d.seq, d.delivery_id, ?, ?, coalesce((SELECT max(generation) FROM forward_jobs"
    " WHERE delivery_seq = d.seq AND destination = ?), -1) + 1, 1, 'pending', d.received_at, ?, ?"
    " FROM deliveries d WHERE d.seq = ?"
)
_JOB_COLUMNS = (
    "j.id, j.delivery_seq, j.delivery_id, j.destination, j.route, j.generation, j.replay, j.status, j.attempts,"
    " j.created_at, j.next_attempt_at, j.last_attempt_at, j.last_status_code, j.last_error, j.completed_at,"
    " e.event, e.repository"
)
_ATTEMPT_COLUMNS = (
    "id, job_id, destination, number, replay, started_at, latency, status_code, outcome, error, response_excerpt"
)


def insert_forward_jobs(
    conn: sqlite3.Connection,
    *,
    delivery_seq: int,
    delivery_id: str,
    received_at: float,
    targets: Sequence[ForwardTarget],
    at: float,
) -> int:
    """Create the original (generation 0) job per target, unless it exists: reprocessing never duplicates."""
    created = 0
    for target in targets:
        row = (delivery_seq, delivery_id, target.destination, target.route, received_at, at, at)
        created += conn.execute(_INSERT_JOB, row).rowcount
    return created


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
            jobs = []
            for job_id, seq, delivery_id, dest, route, replay, attempts, received_at, first_at in rows:
                _, event, kind, headers, body = deliveries[seq]
                jobs.append(
                    ForwardJob(
                        id=job_id,
                        delivery_seq=seq,
                        delivery_id=delivery_id,
                        destination=dest,
                        route=route,
                        replay=bool(replay),
                        attempts=attempts,
                        received_at=received_at,
                        first_attempt_at=first_at,
                        event=event,
                        content_kind=ContentKind(kind),
                        headers=orjson.loads(headers),
                        body=bytes(body),
                    )
                )
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
        sql = "UPDATE forward_jobs SET next_attempt_at = ? WHERE status = 'delivering'" + condition  # noqa: S608 - fixed text
        values = [self._clock.now(), *params]
        released: int = await self._writer.run(lambda conn: conn.execute(sql, values).rowcount)
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
                conn.execute(_SUPERSEDE, (seq, destination))
                created += conn.execute(_INSERT_REPLAY, (destination, route, destination, at, at, seq)).rowcount
            return created

        created: int = await self._writer.run(enqueue)
        self._work.notify()
        return created


class SqliteForwardLog:
    """Every attempt, per-destination counts, dead letters and replay selections, on the read pool."""

    def __init__(self, reader: SqliteReader) -> None:
        self._reader = reader

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        sql, params = _replay_query(selection)
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql, tuple(params)).fetchall())
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    async def stats(self) -> Sequence[DestinationStats]:
        def load(conn: Connection) -> list[DestinationStats]:
            counts: dict[str, dict[str, int]] = {}
            for destination, status, count in conn.exec_driver_sql(
                "SELECT destination, status, count(*) FROM forward_jobs"
                " WHERE status IN ('pending', 'retry', 'delivering', 'dead') GROUP BY status, destination"
            ):
                counts.setdefault(destination, {})[status] = count
            totals = {
                row[0]: row
                for row in conn.exec_driver_sql(
                    "SELECT destination, attempts, delivered, failed, last_attempt_at, last_success_at, last_error,"
                    " last_error_at FROM forward_stats"
                )
            }
            stats = []
            for name in sorted(set(counts) | set(totals)):
                c = counts.get(name, {})
                t = totals.get(name, (name, 0, 0, 0, None, None, None, None))
                stats.append(
                    DestinationStats(
                        destination=name,
                        queued=c.get("pending", 0) + c.get("retry", 0) + c.get("delivering", 0),
                        dead=c.get("dead", 0),
                        attempts=t[1],
                        delivered=t[2],
                        failed=t[3],
                        last_attempt_at=t[4],
                        last_success_at=t[5],
                        last_error=t[6],
                        last_error_at=t[7],
                    )
                )
            return stats

        return await self._reader.run(load)

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        def load(conn: Connection) -> list[ForwardView]:
            seq = conn.exec_driver_sql("SELECT seq FROM deliveries WHERE delivery_id = ?", (delivery_id,)).scalar()
            if seq is None:
                return []
            attempts: dict[int, list[AttemptView]] = {}
            for row in conn.exec_driver_sql(
                f"SELECT {_ATTEMPT_COLUMNS} FROM forward_attempts WHERE delivery_seq = ? ORDER BY id",  # noqa: S608
                (seq,),
            ):
                attempts.setdefault(row[1], []).append(_attempt_view(row))
            rows = conn.exec_driver_sql(
                f"SELECT {_JOB_COLUMNS} FROM forward_jobs j LEFT JOIN events e ON e.seq = j.delivery_seq"  # noqa: S608
                " WHERE j.delivery_seq = ? ORDER BY j.id",
                (seq,),
            )
            return [_forward_view(row, tuple(attempts.get(row[0], ()))) for row in rows]

        return await self._reader.run(load)

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        clauses = ["j.status = 'dead'"]
        params: list[Any] = []
        if destination is not None:
            clauses.append("j.destination = ?")
            params.append(destination)
        if before_id is not None:
            clauses.append("j.id < ?")
            params.append(before_id)
        params.append(limit)
        sql = (
            f"SELECT {_JOB_COLUMNS} FROM forward_jobs j LEFT JOIN events e ON e.seq = j.delivery_seq"  # noqa: S608
            f" WHERE {' AND '.join(clauses)} ORDER BY j.id DESC LIMIT ?"
        )
        rows = await self._reader.run(lambda conn: conn.exec_driver_sql(sql, tuple(params)).fetchall())
        return [_forward_view(row, ()) for row in rows]


def _record_attempt(conn: sqlite3.Connection, r: AttemptResult) -> None:
    done = r.next_status in (ForwardStatus.DELIVERED, ForwardStatus.DEAD)
    error = r.error if r.error is not None else (None if r.status_code is None else f"HTTP {r.status_code}")
    delivered = r.next_status is ForwardStatus.DELIVERED
    row = conn.execute(
        _RECORD,
        (
            r.next_status.value,
            r.started_at,
            r.started_at,
            r.status_code,
            None if delivered else error,
            r.next_attempt_at,
            r.started_at + r.latency if done else None,
            r.job_id,
        ),
    ).fetchone()
    if row is None:
        return  # the job is not being delivered any more (its lease ran out and it went elsewhere)
    delivery_seq, number, replay = row
    outcome = {ForwardStatus.DELIVERED: "delivered", ForwardStatus.RETRY: "retry"}.get(r.next_status, "dead")
    conn.execute(
        _ATTEMPT,
        (
            r.job_id,
            delivery_seq,
            r.destination,
            number,
            replay,
            r.started_at,
            r.latency,
            r.status_code,
            outcome,
            r.error,
            r.response_excerpt,
        ),
    )
    conn.execute(
        _STATS,
        (
            r.destination,
            1 if delivered else 0,
            0 if delivered else 1,
            r.started_at,
            r.started_at if delivered else None,
            None if delivered else error,
            None if delivered else r.started_at,
        ),
    )


def _replay_query(s: ReplaySelection) -> tuple[str, list[Any]]:
    """The (delivery seq, destination, route) pairs to replay; every value a bound parameter."""
    deliveries = Where()
    deliveries.add("d.delivery_id = ?", s.delivery_id)
    deliveries.add("d.event = ?", s.event)
    deliveries.add("lower(e.repository) GLOB lower(?)", s.repository)
    deliveries.add("d.received_at >= ?", s.since)
    deliveries.add("d.received_at < ?", s.until)
    params = deliveries.params
    jobs = Where()
    jobs.add("j.destination = ?", s.destination)
    jobs.when(s.dead_only, "j.status = 'dead'")
    job_filters, job_params = jobs.clauses, jobs.params
    if s.job_ids:
        job_filters.append(f"j.id IN ({', '.join('?' * len(s.job_ids))})")
        job_params.extend(s.job_ids)
    where = deliveries.sql()
    if s.to is None:
        latest = (
            "j.generation = (SELECT max(k.generation) FROM forward_jobs k"
            " WHERE k.delivery_seq = j.delivery_seq AND k.destination = j.destination)"
        )
        sql = (
            "SELECT j.delivery_seq, j.destination, j.route FROM forward_jobs j"  # noqa: S608 - fixed clauses
            " JOIN deliveries d ON d.seq = j.delivery_seq LEFT JOIN events e ON e.seq = j.delivery_seq"
            f" WHERE {latest} AND {where} AND {jobs.sql()}"
            " ORDER BY j.delivery_seq, j.destination"
        )
        return sql, params + job_params
    exists = ""
    if job_filters:
        exists = (
            " AND EXISTS (SELECT 1 FROM forward_jobs j WHERE j.delivery_seq = d.seq AND "  # noqa: S608
            + " AND ".join(job_filters)
            + ")"
        )
    sql = (
        "SELECT d.seq, ?, (SELECT r.route FROM forward_jobs r WHERE r.delivery_seq = d.seq AND r.destination = ?"  # noqa: S608
        " ORDER BY r.generation DESC LIMIT 1) FROM deliveries d JOIN delivery_states ds ON ds.seq = d.seq"
        " LEFT JOIN events e ON e.seq = d.seq"
        f" WHERE ds.status = 'processed' AND {where}{exists} ORDER BY d.seq"
    )
    return sql, [s.to, s.to, *params, *job_params]


def _attempt_view(row: Any) -> AttemptView:
    return AttemptView(
        id=row[0],
        job_id=row[1],
        destination=row[2],
        number=row[3],
        replay=bool(row[4]),
        started_at=row[5],
        latency=row[6],
        status_code=row[7],
        outcome=row[8],
        error=row[9],
        response_excerpt=row[10],
    )


def _forward_view(row: Any, attempts: tuple[AttemptView, ...]) -> ForwardView:
    status = ForwardStatus(row[7])
    return ForwardView(
        id=row[0],
        delivery_seq=row[1],
        delivery_id=row[2],
        destination=row[3],
        route=row[4],
        generation=row[5],
        replay=bool(row[6]),
        status=status,
        attempts=row[8],
        created_at=row[9],
        next_attempt_at=row[10] if status in (ForwardStatus.PENDING, ForwardStatus.RETRY) else None,
        last_attempt_at=row[11],
        last_status_code=row[12],
        last_error=row[13],
        completed_at=row[14],
        event=row[15],
        repository=row[16],
        attempt_log=attempts,
    )
