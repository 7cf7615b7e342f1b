"""The memory forward queue and log: jobs (created by the store with their delivery's outcome: the outbox), every
attempt, and per-destination counters.

A claim moves a job to `delivering` and its `next_attempt_at` to the lease's end, so a job whose forwarder died is
due again when its lease runs out. Attempts move jobs as `core.forward_states` allows (a job that is no longer
being delivered records nothing). Every operation that moves jobs appends a `forward` change per delivery it
touched to the change feed, under the same lock. One process holds a memory database, so at a forwarder's start
every lease is a crashed (or stopped) forwarder's: `single_forwarder`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ghingest.adapters.memory.signal import wait
from ghingest.adapters.memory.tables import JobRow, MemoryDatabase, StatsRow
from ghingest.core.destination_health import RecentAttempt, figures
from ghingest.core.forward_states import ACTIVE, ForwardStatus, can_move
from ghingest.core.routing import glob_matches
from ghingest.core.states import DeliveryStatus
from ghingest.ports import (
    AttemptResult,
    AttemptView,
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

_OUTCOMES = {ForwardStatus.DELIVERED: "delivered", ForwardStatus.RETRY: "retry"}  # anything else: "dead"
_QUEUED = (ForwardStatus.PENDING, ForwardStatus.RETRY, ForwardStatus.DELIVERING)


class MemoryForwardQueue:
    capabilities = ForwardQueueCapabilities(single_forwarder=True)

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        with self._db.transaction() as db:
            now = db.now()
            if destination in db.pauses:
                return []
            due = [j for j in db.jobs.values() if j.destination == destination and j.status in ACTIVE]
            due = [j for j in due if j.next_attempt_at <= now]
            due.sort(key=lambda j: (j.next_attempt_at, j.id))
            jobs = []
            for job in sorted(due[: max(0, limit)], key=lambda j: j.id):
                jobs.append(_forward_job(db, job))  # as it was before this claim (its attempts so far)
                job.status, job.next_attempt_at = ForwardStatus.DELIVERING, now + lease_seconds
            return jobs

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        with self._db.transaction() as db:
            moved = [_record_attempt(db, result) for result in results]
            _note_forwards(db, [delivery_id for delivery_id in moved if delivery_id is not None])
        self._db.changed.notify()
        self._db.forward_work.notify()

    async def release(self, job_ids: Sequence[int]) -> int:
        with self._db.transaction() as db:
            released = _release(db, [db.jobs[i] for i in job_ids if i in db.jobs])
        return self._released(released)

    async def recover(self) -> int:
        with self._db.transaction() as db:
            released = _release(db, list(db.jobs.values()))
        return self._released(released)

    def _released(self, released: int) -> int:
        if released:
            self._db.changed.notify()
            self._db.forward_work.notify()
        return released

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        replayed: list[str] = []  # the delivery id of each job created
        with self._db.transaction() as db:
            now = db.now()
            for seq, destination, route in targets:
                row = db.deliveries.get(seq)
                if row is None:
                    continue
                ids = db.jobs_of.setdefault((seq, destination), [])
                for job in (db.jobs[i] for i in ids):
                    if can_move(job.status, ForwardStatus.REPLAYED):
                        job.status = ForwardStatus.REPLAYED
                db.last_job += 1
                db.jobs[db.last_job] = JobRow(
                    id=db.last_job,
                    delivery_seq=seq,
                    delivery_id=row.delivery.delivery_id,
                    destination=destination,
                    route=route,
                    generation=max((db.jobs[i].generation for i in ids), default=-1) + 1,
                    replay=True,
                    received_at=row.delivery.received_at,
                    created_at=now,
                    next_attempt_at=now,
                )
                ids.append(db.last_job)
                replayed.append(row.delivery.delivery_id)
            _note_forwards(db, replayed)
        if replayed:
            self._db.changed.notify()
            self._db.forward_work.notify()
        return len(replayed)

    async def wait_for_work(self, timeout: float) -> None:
        # Only a wake-up, no check of due jobs: a pump waits while it holds jobs, and the method names no destination.
        event = self._db.forward_work.register()
        with self._db.transaction():
            pass  # closed: raise
        await wait(event, timeout)

    async def pause(self, destination: str, *, by: str) -> DestinationPause:
        with self._db.transaction() as db:
            return db.pauses.setdefault(destination, DestinationPause(destination, by, db.now()))

    async def resume(self, destination: str) -> DestinationPause | None:
        with self._db.transaction() as db:
            pause = db.pauses.pop(destination, None)
            if pause is not None:
                now = db.now()
                for job in db.jobs.values():
                    held_back = job.status in ACTIVE and job.next_attempt_at <= now
                    if job.destination == destination and held_back and job.first_attempt_at is not None:
                        job.first_attempt_at += max(0.0, now - pause.paused_at)
        if pause is not None:
            self._db.forward_work.notify()
        return pause

    async def paused(self) -> Sequence[DestinationPause]:
        with self._db.transaction() as db:
            return [db.pauses[name] for name in sorted(db.pauses)]

    async def record_test(self, test: DestinationTest) -> None:
        with self._db.transaction() as db:
            db.tests[test.destination] = test


class MemoryForwardLog:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        with self._db.transaction() as db:
            return _replay_targets(db, selection)

    async def target_deliveries(self, seqs: Sequence[int]) -> Sequence[TargetDelivery]:
        with self._db.transaction() as db:
            found = []
            for seq in seqs:
                if (row := db.deliveries.get(seq)) is not None:
                    event = db.events.get(seq)
                    d = row.delivery
                    repository = event.record.repository if event is not None else None
                    found.append(TargetDelivery(seq, d.delivery_id, d.event, repository, d.received_at))
            return found

    async def stats(self) -> Sequence[DestinationStats]:
        with self._db.transaction() as db:
            queued: dict[str, int] = {}
            dead: dict[str, int] = {}
            for job in db.jobs.values():
                if job.status in _QUEUED:
                    queued[job.destination] = queued.get(job.destination, 0) + 1
                elif job.status is ForwardStatus.DEAD:
                    dead[job.destination] = dead.get(job.destination, 0) + 1
            stats = []
            for name in sorted(set(queued) | set(dead) | set(db.stats)):
                s = db.stats.get(name, StatsRow())
                stats.append(
                    DestinationStats(
                        destination=name,
                        queued=queued.get(name, 0),
                        dead=dead.get(name, 0),
                        attempts=s.attempts,
                        delivered=s.delivered,
                        failed=s.failed,
                        last_attempt_at=s.last_attempt_at,
                        last_success_at=s.last_success_at,
                        last_error=s.last_error,
                        last_error_at=s.last_error_at,
                    )
                )
            return stats

    async def activity(self, windows: Sequence[float], *, recent: int) -> Sequence[DestinationActivity]:
        with self._db.transaction() as db:
            now = db.now()
            by_destination: dict[str, list[AttemptView]] = {}
            for _seq, attempt in db.attempts:
                by_destination.setdefault(attempt.destination, []).append(attempt)
            out = []
            for name in sorted(by_destination):
                log = sorted(by_destination[name], key=lambda a: (a.started_at, a.id))
                error_at = db.stats[name].last_error_at if name in db.stats else None
                recovered = [a.started_at for a in log if a.outcome == "delivered" and error_at is not None
                             and a.started_at > error_at]  # fmt: skip
                out.append(
                    DestinationActivity(
                        destination=name,
                        windows=tuple(
                            figures(w, [(a.latency, a.outcome) for a in log if a.started_at >= now - w])
                            for w in windows
                        ),
                        recent=tuple(
                            RecentAttempt(a.started_at, a.outcome == "delivered") for a in log[::-1][: max(0, recent)]
                        ),
                        recovered_at=min(recovered, default=None),
                    )
                )
            return out

    async def tests(self) -> Sequence[DestinationTest]:
        with self._db.transaction() as db:
            return [db.tests[name] for name in sorted(db.tests)]

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        with self._db.transaction() as db:
            seq = db.seq_of.get(delivery_id)
            if seq is None:
                return []
            log: dict[int, list[AttemptView]] = {}
            for delivery_seq, attempt in db.attempts:
                if delivery_seq == seq:
                    log.setdefault(attempt.job_id, []).append(attempt)
            jobs = sorted((j for j in db.jobs.values() if j.delivery_seq == seq), key=lambda j: j.id)
            return [_forward_view(db, job, tuple(log.get(job.id, ()))) for job in jobs]

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        with self._db.transaction() as db:
            dead = [
                job
                for job in db.jobs.values()
                if job.status is ForwardStatus.DEAD
                and destination in (None, job.destination)
                and (before_id is None or job.id < before_id)
            ]
            dead.sort(key=lambda j: j.id, reverse=True)
            return [_forward_view(db, job, ()) for job in dead[: max(0, limit)]]

    async def dead_lettered_since(self, since: float) -> int:
        with self._db.transaction() as db:
            return sum(
                1
                for job in db.jobs.values()
                if job.status is ForwardStatus.DEAD and job.completed_at is not None and job.completed_at >= since
            )


def _forward_job(db: MemoryDatabase, job: JobRow) -> ForwardJob:
    delivery = db.deliveries[job.delivery_seq].delivery
    return ForwardJob(
        id=job.id,
        delivery_seq=job.delivery_seq,
        delivery_id=job.delivery_id,
        destination=job.destination,
        route=job.route,
        replay=job.replay,
        attempts=job.attempts,
        received_at=job.received_at,
        first_attempt_at=job.first_attempt_at,
        event=delivery.event,
        content_kind=delivery.content_kind,
        headers=dict(delivery.headers),
        body=delivery.body,
    )


def _note_forwards(db: MemoryDatabase, delivery_ids: Sequence[str]) -> None:
    """A `forward` change per delivery among `delivery_ids`, in order (one per delivery and operation)."""
    db.changes += [("forward", delivery_id) for delivery_id in dict.fromkeys(delivery_ids)]


def _record_attempt(db: MemoryDatabase, r: AttemptResult) -> str | None:
    """Record one attempt; the delivery id of its job when it moved the job on."""
    job = db.jobs.get(r.job_id)
    if job is None or job.status is not ForwardStatus.DELIVERING or not can_move(job.status, r.next_status):
        return None  # not being delivered any more (its lease ran out and it went elsewhere)
    delivered = r.next_status is ForwardStatus.DELIVERED
    done = r.next_status in (ForwardStatus.DELIVERED, ForwardStatus.DEAD)
    error = r.error if r.error is not None else (None if r.status_code is None else f"HTTP {r.status_code}")
    job.status = r.next_status
    job.attempts += 1
    job.first_attempt_at = r.started_at if job.first_attempt_at is None else job.first_attempt_at
    job.last_attempt_at, job.last_status_code = r.started_at, r.status_code
    job.last_error = None if delivered else error
    if r.next_attempt_at is not None:
        job.next_attempt_at = r.next_attempt_at
    job.completed_at = r.started_at + r.latency if done else None
    attempt = AttemptView(
        id=len(db.attempts) + 1,
        job_id=job.id,
        destination=r.destination,
        number=job.attempts,
        replay=job.replay,
        started_at=r.started_at,
        latency=r.latency,
        status_code=r.status_code,
        outcome=_OUTCOMES.get(r.next_status, "dead"),
        error=r.error,
        response_excerpt=r.response_excerpt,
    )
    db.attempts.append((job.delivery_seq, attempt))
    stats = db.stats.setdefault(r.destination, StatsRow())
    stats.attempts += 1
    stats.last_attempt_at = r.started_at
    if delivered:
        stats.delivered += 1
        stats.last_success_at = r.started_at
    else:
        stats.failed += 1
        stats.last_error, stats.last_error_at = error, r.started_at
    return job.delivery_id


def _release(db: MemoryDatabase, jobs: list[JobRow]) -> int:
    """Make the leased ones among `jobs` due now; how many."""
    now = db.now()
    released = [job for job in jobs if job.status is ForwardStatus.DELIVERING]
    for job in released:
        job.next_attempt_at = now
    _note_forwards(db, [job.delivery_id for job in released])
    return len(released)


def _replay_targets(db: MemoryDatabase, s: ReplaySelection) -> list[ReplayTarget]:
    """As the SQL backends select them (`adapters/sqlite/forward_queue._replay_query`)."""

    def delivery_matches(seq: int) -> bool:
        d = db.deliveries[seq].delivery
        event = db.events.get(seq)
        repository = event.record.repository if event is not None else None
        return (
            (s.delivery_id is None or d.delivery_id == s.delivery_id)
            and (s.event is None or d.event == s.event)
            and (s.repository is None or (repository is not None and glob_matches(repository, s.repository)))
            and (s.since is None or d.received_at >= s.since)
            and (s.until is None or d.received_at < s.until)
        )

    def job_matches(job: JobRow) -> bool:
        return (
            (s.destination is None or job.destination == s.destination)
            and (not s.dead_only or job.status is ForwardStatus.DEAD)
            and (not s.job_ids or job.id in s.job_ids)
        )

    if s.to is None:  # each delivery's latest job per destination
        targets = []
        for (seq, _destination), ids in db.jobs_of.items():
            latest = max((db.jobs[i] for i in ids), key=lambda j: j.generation, default=None)
            if latest is not None and job_matches(latest) and delivery_matches(seq):
                targets.append((seq, latest.destination, latest.route))
        return sorted(targets, key=lambda t: (t[0], t[1]))
    narrowed = s.destination is not None or s.dead_only or bool(s.job_ids)
    chosen: list[ReplayTarget] = []
    for seq in sorted(db.deliveries):
        if db.deliveries[seq].status is not DeliveryStatus.PROCESSED or not delivery_matches(seq):
            continue
        if narrowed and not any(job_matches(j) for j in db.jobs.values() if j.delivery_seq == seq):
            continue
        previous = [db.jobs[i] for i in db.jobs_of.get((seq, s.to), ())]
        route = max(previous, key=lambda j: j.generation).route if previous else None
        chosen.append((seq, s.to, route))
    return chosen


def _forward_view(db: MemoryDatabase, job: JobRow, attempts: tuple[AttemptView, ...]) -> ForwardView:
    event = db.events.get(job.delivery_seq)
    return ForwardView(
        id=job.id,
        delivery_seq=job.delivery_seq,
        delivery_id=job.delivery_id,
        destination=job.destination,
        route=job.route,
        generation=job.generation,
        replay=job.replay,
        status=job.status,
        attempts=job.attempts,
        created_at=job.created_at,
        next_attempt_at=job.next_attempt_at if job.status in (ForwardStatus.PENDING, ForwardStatus.RETRY) else None,
        last_attempt_at=job.last_attempt_at,
        last_status_code=job.last_status_code,
        last_error=job.last_error,
        completed_at=job.completed_at,
        event=event.record.event if event is not None else None,
        repository=event.record.repository if event is not None else None,
        attempt_log=attempts,
    )
