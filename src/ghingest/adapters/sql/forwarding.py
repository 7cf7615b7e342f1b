"""The forward queue's SQL and row mappings, shared by the SQL backends (SQLite, PostgreSQL).

Statements use `?` placeholders (SQLite's paramstyle; the PostgreSQL adapter converts them, see
`ghingest.adapters.postgres.connection.pyformat`). What differs between the dialects is passed in: the claim (a
subquery in SQLite, `FOR UPDATE SKIP LOCKED` in PostgreSQL), the repository glob, the lease owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ghingest.adapters.sql.where import Where
from ghingest.core.delivery import ContentKind
from ghingest.core.destination_health import RecentAttempt, WindowFigures
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports.forwarding import (
    AttemptResult,
    AttemptView,
    DestinationActivity,
    DestinationPause,
    DestinationStats,
    DestinationTest,
    ForwardJob,
    ForwardView,
    ReplaySelection,
    TargetDelivery,
)

ACTIVE = "status IN ('pending', 'retry', 'delivering')"  # the very text of ix_forward_jobs_due's condition
# A claim's condition: the destination is not paused (`forward_destinations`, a handful of rows).
NOT_PAUSED = "destination NOT IN (SELECT destination FROM forward_destinations WHERE paused_at IS NOT NULL)"

INSERT_JOB = (
    "INSERT INTO forward_jobs (delivery_seq, delivery_id, destination, route, generation, replay, status,"
    " received_at, created_at, next_attempt_at) VALUES (?, ?, ?, ?, 0, FALSE, 'pending', ?, ?, ?)"
    " ON CONFLICT (delivery_seq, destination, generation) DO NOTHING"
)
# `?` after the SET list: an extra condition of the dialect (PostgreSQL: the lease owner), else nothing.
RECORD = (
    "UPDATE forward_jobs SET status = ?, attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, ?),"
    " last_attempt_at = ?, last_status_code = ?, last_error = ?, next_attempt_at = coalesce(?, next_attempt_at),"
    " completed_at = ? WHERE id = ? AND status = 'delivering'{held}"
    " RETURNING delivery_seq, attempts, replay, delivery_id"
)
ATTEMPT = (
    "INSERT INTO forward_attempts (job_id, delivery_seq, destination, number, replay, started_at, latency,"
    " status_code, outcome, error, response_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
STATS = (
    "INSERT INTO forward_stats (destination, attempts, delivered, failed, last_attempt_at, last_success_at,"
    " last_error, last_error_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE SET"
    " attempts = forward_stats.attempts + 1, delivered = forward_stats.delivered + excluded.delivered,"
    " failed = forward_stats.failed + excluded.failed, last_attempt_at = excluded.last_attempt_at,"
    " last_success_at = coalesce(excluded.last_success_at, forward_stats.last_success_at),"
    " last_error = coalesce(excluded.last_error, forward_stats.last_error),"
    " last_error_at = coalesce(excluded.last_error_at, forward_stats.last_error_at)"
)
SUPERSEDE = "UPDATE forward_jobs SET status = 'replayed' WHERE delivery_seq = ? AND destination = ? AND status = 'dead'"
INSERT_REPLAY = (
    "INSERT INTO forward_jobs (delivery_seq, delivery_id, destination, route, generation, replay, status,"
    " received_at, created_at, next_attempt_at)"
    " SELECT d.seq, d.delivery_id, ?, ?, coalesce((SELECT max(generation) FROM forward_jobs"
    " WHERE delivery_seq = d.seq AND destination = ?), -1) + 1, TRUE, 'pending', d.received_at, ?, ?"
    " FROM deliveries d WHERE d.seq = ?"
)
JOB_COLUMNS = (
    "j.id, j.delivery_seq, j.delivery_id, j.destination, j.route, j.generation, j.replay, j.status, j.attempts,"
    " j.created_at, j.next_attempt_at, j.last_attempt_at, j.last_status_code, j.last_error, j.completed_at,"
    " e.event, e.repository"
)
ATTEMPT_COLUMNS = (
    "id, job_id, destination, number, replay, started_at, latency, status_code, outcome, error, response_excerpt"
)
STATUS_COUNTS = (
    "SELECT destination, status, count(*) FROM forward_jobs"
    " WHERE status IN ('pending', 'retry', 'delivering', 'dead') GROUP BY status, destination"
)
TOTALS = (
    "SELECT destination, attempts, delivered, failed, last_attempt_at, last_success_at, last_error, last_error_at"
    " FROM forward_stats"
)
SEQ_OF = "SELECT seq FROM deliveries WHERE delivery_id = ?"


def target_deliveries_query(seqs: Sequence[int]) -> str:
    """`ForwardLog.target_deliveries`: one `?` per key."""
    marks = ", ".join("?" * len(seqs))
    return (
        "SELECT d.seq, d.delivery_id, d.event, e.repository, d.received_at FROM deliveries d"  # noqa: S608 - marks
        f" LEFT JOIN events e ON e.seq = d.seq WHERE d.seq IN ({marks})"
    )


def target_deliveries(rows: Iterable[Any], seqs: Sequence[int]) -> list[TargetDelivery]:
    found = {int(r[0]): TargetDelivery(int(r[0]), str(r[1]), str(r[2]), r[3], float(r[4])) for r in rows}
    return [found[seq] for seq in seqs if seq in found]


DEAD_SINCE = "SELECT count(*) FROM forward_jobs WHERE status = 'dead' AND completed_at >= ?"  # ix_forward_jobs_dead_at
ATTEMPTS_OF = f"SELECT {ATTEMPT_COLUMNS} FROM forward_attempts WHERE delivery_seq = ? ORDER BY id"  # noqa: S608
JOBS_OF = (
    f"SELECT {JOB_COLUMNS} FROM forward_jobs j LEFT JOIN events e ON e.seq = j.delivery_seq"  # noqa: S608
    " WHERE j.delivery_seq = ? ORDER BY j.id"
)

_OUTCOMES = {ForwardStatus.DELIVERED: "delivered", ForwardStatus.RETRY: "retry"}  # anything else: "dead"


def record_params(r: AttemptResult) -> tuple[Any, ...]:
    """`RECORD`'s parameters (before any the dialect's condition adds) for one attempt."""
    done = r.next_status in (ForwardStatus.DELIVERED, ForwardStatus.DEAD)
    delivered = r.next_status is ForwardStatus.DELIVERED
    return (
        r.next_status.value,
        r.started_at,
        r.started_at,
        r.status_code,
        None if delivered else _error_of(r),
        r.next_attempt_at,
        r.started_at + r.latency if done else None,
        r.job_id,
    )


def logged_params(r: AttemptResult, delivery_seq: int, number: int, replay: Any) -> tuple[tuple[Any, ...], ...]:
    """`ATTEMPT`'s and `STATS`' parameters for an attempt `RECORD` moved its job for (what it returned, but the
    delivery id)."""
    delivered = r.next_status is ForwardStatus.DELIVERED
    error = _error_of(r)
    attempt = (
        r.job_id, delivery_seq, r.destination, number, replay, r.started_at, r.latency, r.status_code,
        _OUTCOMES.get(r.next_status, "dead"), r.error, r.response_excerpt,
    )  # fmt: skip
    stats = (
        r.destination,
        1 if delivered else 0,
        0 if delivered else 1,
        r.started_at,
        r.started_at if delivered else None,
        None if delivered else error,
        None if delivered else r.started_at,
    )
    return attempt, stats


def _error_of(r: AttemptResult) -> str | None:
    return r.error if r.error is not None else (None if r.status_code is None else f"HTTP {r.status_code}")


def dead_letters_query(destination: str | None, before_id: int | None, limit: int) -> tuple[str, list[Any]]:
    where = Where()
    where.when(True, "j.status = 'dead'")
    where.add("j.destination = ?", destination)
    where.add("j.id < ?", before_id)
    sql = (
        f"SELECT {JOB_COLUMNS} FROM forward_jobs j LEFT JOIN events e ON e.seq = j.delivery_seq"  # noqa: S608
        f" WHERE {where.sql()} ORDER BY j.id DESC LIMIT ?"
    )
    return sql, [*where.params, limit]


def replay_query(s: ReplaySelection, *, glob: str = "lower(e.repository) GLOB lower(?)") -> tuple[str, list[Any]]:
    """The (delivery seq, destination, route) triples to replay; every value a bound parameter. `glob`: the
    dialect's clause matching the repository against the selection's glob (one `?`), in any case."""
    deliveries = Where()
    deliveries.add("d.delivery_id = ?", s.delivery_id)
    deliveries.add("d.event = ?", s.event)
    deliveries.add(glob, s.repository)
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


def destination_stats(counts: Iterable[Any], totals: Iterable[Any]) -> list[DestinationStats]:
    """Per destination, from `STATUS_COUNTS` and `TOTALS` rows."""
    by_status: dict[str, dict[str, int]] = {}
    for destination, status, count in counts:
        by_status.setdefault(destination, {})[status] = count
    by_name: Mapping[str, Any] = {row[0]: row for row in totals}
    stats = []
    for name in sorted(set(by_status) | set(by_name)):
        c = by_status.get(name, {})
        t = by_name.get(name, (name, 0, 0, 0, None, None, None, None))
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


def attempt_view(row: Any) -> AttemptView:
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


def forward_views(jobs: Iterable[Any], attempts: Iterable[Any] = ()) -> list[ForwardView]:
    """Views of `JOB_COLUMNS` rows, each with its attempts among `ATTEMPT_COLUMNS` rows."""
    log: dict[int, list[AttemptView]] = {}
    for row in attempts:
        log.setdefault(row[1], []).append(attempt_view(row))
    return [forward_view(row, tuple(log.get(row[0], ()))) for row in jobs]


def forward_view(row: Any, attempts: tuple[AttemptView, ...]) -> ForwardView:
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


def forward_job(row: Any, event: str, content_kind: str, headers: str | bytes, body: bytes) -> ForwardJob:
    """A claimed job from its (id, delivery_seq, delivery_id, destination, route, replay, attempts, received_at,
    first_attempt_at) and its delivery's event, content kind, headers (JSON) and body."""
    job_id, seq, delivery_id, destination, route, replay, attempts, received_at, first_at = row
    return ForwardJob(
        id=job_id,
        delivery_seq=seq,
        delivery_id=delivery_id,
        destination=destination,
        route=route,
        replay=bool(replay),
        attempts=attempts,
        received_at=received_at,
        first_attempt_at=first_at,
        event=event,
        content_kind=ContentKind(content_kind),
        headers=orjson.loads(headers),
        body=bytes(body),
    )


# --- pauses and test deliveries (forward_destinations) ---------------------------------------------------------

PAUSE = (
    "INSERT INTO forward_destinations (destination, paused_by, paused_at) VALUES (?, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET"
    " paused_by = coalesce(forward_destinations.paused_by, excluded.paused_by),"
    " paused_at = coalesce(forward_destinations.paused_at, excluded.paused_at)"
    " RETURNING destination, paused_by, paused_at"
)
PAUSE_OF = (
    "SELECT destination, paused_by, paused_at FROM forward_destinations WHERE destination = ? AND paused_at IS NOT NULL"
)
UNPAUSE = "UPDATE forward_destinations SET paused_by = NULL, paused_at = NULL WHERE destination = ?"
# The time paused does not count towards the `max_age` of a job it held back (due when it ends): the job's first
# attempt moves later by as much. Parameters: the time paused, the destination, now.
CREDIT_PAUSE = (
    f"UPDATE forward_jobs SET first_attempt_at = first_attempt_at + ? WHERE destination = ? AND {ACTIVE}"  # noqa: S608
    " AND next_attempt_at <= ? AND first_attempt_at IS NOT NULL"
)
PAUSED = (
    "SELECT destination, paused_by, paused_at FROM forward_destinations WHERE paused_at IS NOT NULL"
    " ORDER BY destination"
)
RECORD_TEST = (
    "INSERT INTO forward_destinations (destination, test_delivery_id, test_by, test_at, test_latency,"
    " test_status_code, test_error, test_excerpt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (destination) DO UPDATE SET test_delivery_id = excluded.test_delivery_id,"
    " test_by = excluded.test_by, test_at = excluded.test_at, test_latency = excluded.test_latency,"
    " test_status_code = excluded.test_status_code, test_error = excluded.test_error,"
    " test_excerpt = excluded.test_excerpt"
)
TESTS = (
    "SELECT destination, test_delivery_id, test_by, test_at, test_latency, test_status_code, test_error,"
    " test_excerpt FROM forward_destinations WHERE test_at IS NOT NULL ORDER BY destination"
)


def pause_of(row: Any) -> DestinationPause:
    return DestinationPause(destination=row[0], paused_by=row[1], paused_at=row[2])


def ping_params(t: DestinationTest) -> tuple[Any, ...]:
    return (t.destination, t.delivery_id, t.sent_by, t.sent_at, t.latency, t.status_code, t.error,
            t.response_excerpt)  # fmt: skip


def ping_of(row: Any) -> DestinationTest:
    return DestinationTest(
        destination=row[0], delivery_id=row[1], sent_by=row[2], sent_at=row[3], latency=row[4], status_code=row[5],
        error=row[6], response_excerpt=row[7],
    )  # fmt: skip


# --- health: a destination's attempts by time (ix_forward_attempts_destination_started) ------------------------

ACTIVE_DESTINATIONS = "SELECT destination, last_error_at FROM forward_stats ORDER BY destination"
WINDOW_COUNTS = (
    "SELECT count(*), coalesce(sum(CASE WHEN outcome = 'delivered' THEN 1 ELSE 0 END), 0),"
    " coalesce(sum(CASE WHEN outcome = 'dead' THEN 1 ELSE 0 END), 0)"
    " FROM forward_attempts WHERE destination = ? AND started_at >= ?"
)
RECENT = (
    "SELECT started_at, outcome FROM forward_attempts WHERE destination = ? ORDER BY started_at DESC, id DESC LIMIT ?"
)
RECOVERED = (
    "SELECT started_at FROM forward_attempts WHERE destination = ? AND started_at > ? AND outcome = 'delivered'"
    " ORDER BY started_at LIMIT 1"
)


def window_figures(seconds: float, counts: Any, p50: float | None, p95: float | None) -> WindowFigures:
    return WindowFigures(
        seconds=seconds, attempts=int(counts[0]), delivered=int(counts[1]), dead=int(counts[2]), p50=p50, p95=p95
    )


def destination_activity(
    destination: str, windows: tuple[WindowFigures, ...], recent: Iterable[Any], recovered_at: float | None
) -> DestinationActivity:
    return DestinationActivity(
        destination=destination,
        windows=windows,
        recent=tuple(RecentAttempt(row[0], row[1] == "delivered") for row in recent),
        recovered_at=recovered_at,
    )
