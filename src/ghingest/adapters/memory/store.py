"""The memory store's write side: a batch of outcomes recorded under one lock (one transaction), and sightings.

Releases fold with `core.releases.record_change`: a change not seen before folds into the current record; a
delivery recorded again replaces its change, and a webhook change that covers kept poll changes takes them out,
and the record is rebuilt from the changes kept, as the SQLite store does. A covered poll change is not kept (nor
is the delivery shown as the release's). A release whose record did not change gets no feed entry and keeps its
`updated_at`; its `first_seen_at` is the earliest receipt of any of its changes, covered ones included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ghingest.adapters.memory.tables import DeliveryRow, EventRow, JobRow, MemoryDatabase, ReleaseRow, SightingRow
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ReleaseChange, record_change
from ghingest.core.routing import ForwardTarget
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Outcome, StoreCapabilities


class MemoryStore:
    capabilities = StoreCapabilities(foreign_inbox=True)

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        jobs_created = False
        with self._db.transaction() as db:
            now = db.now()
            for outcome in outcomes:
                jobs_created |= _record(db, outcome, now)
        self._db.changed.notify()
        if jobs_created:
            self._db.forward_work.notify()

    async def record_sighting(self, delivery: IncomingDelivery, *, received_at: float) -> None:
        with self._db.transaction() as db:
            seq = db.seq_of.get(delivery.delivery_id)
            same = None if seq is None else db.deliveries[seq].delivery.body == delivery.body
            hooks = db.sightings.setdefault(delivery.delivery_id, {})
            hook_id = delivery.hook_id or ""
            row = hooks.get(hook_id)
            if row is None:
                hooks[hook_id] = SightingRow(hook_id, received_at, received_at, 1, same, delivery.secret_index)
            else:
                row.last_at, row.count = received_at, row.count + 1
                row.same_body, row.secret_index = _and(row.same_body, same), delivery.secret_index

    async def ping(self) -> None:
        with self._db.transaction():
            pass


def _and(a: bool | None, b: bool | None) -> bool | None:
    """SQL's three-valued AND: False wins, then None (not known)."""
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _record(db: MemoryDatabase, outcome: Outcome, now: float) -> bool:
    """Record one outcome; True when it created forward jobs."""
    row = _row_of(db, outcome.delivery)
    outcome = outcome.at_seq(row.delivery.seq)
    delivery = outcome.delivery
    row.recorded_attempts = delivery.attempts + 1
    if outcome.processed is not None:
        row.status, row.error, row.processed_at = DeliveryStatus.PROCESSED, None, now
        _write_event(db, delivery, outcome.processed.event, DeliveryStatus.PROCESSED, None, now)
        if outcome.processed.release is not None:
            _apply_release_change(db, outcome.processed.release, now)
        if outcome.processed.forwards:
            db.changes.append(("forward", delivery.delivery_id))
        return _create_jobs(db, delivery, outcome.processed.forwards, now)
    row.error = outcome.error
    if outcome.retry_at is None:  # failed for good (a retry leaves the status as it is)
        row.status, row.processed_at = DeliveryStatus.FAILED, now
        if outcome.fallback_event is not None:
            _write_event(db, delivery, outcome.fallback_event, DeliveryStatus.FAILED, outcome.error, now)
    return False


def _row_of(db: MemoryDatabase, delivery: StoredDelivery) -> DeliveryRow:
    """The delivery's row, found by its delivery id; an outcome of a delivery this database never held (its inbox
    is a broker's) records the raw delivery too, under a seq of this database's own."""
    seq = db.seq_of.get(delivery.delivery_id)
    if seq is not None:
        return db.deliveries[seq]
    db.last_seq += 1
    row = db.deliveries[db.last_seq] = DeliveryRow(replace(delivery, seq=db.last_seq, attempts=0))
    db.seq_of[delivery.delivery_id] = db.last_seq
    return row


def _write_event(
    db: MemoryDatabase,
    delivery: StoredDelivery,
    record: EventRecord,
    status: DeliveryStatus,
    error: str | None,
    now: float,
) -> None:
    db.events[delivery.seq] = EventRow(delivery.seq, record, status, error, delivery.received_at, now)
    db.changes.append(("event", delivery.delivery_id))


def _apply_release_change(db: MemoryDatabase, change: ReleaseChange, now: float) -> None:
    current = db.releases.get(change.release_id)
    recorded = record_change(
        None if current is None else current.record, db.release_changes.get(change.release_id, {}), change
    )
    db.release_changes[change.release_id] = dict(recorded.changes)
    for delivery_id in recorded.dropped | ({change.delivery_id} if recorded.covered else set()):
        db.release_of.pop(delivery_id, None)
    if not recorded.covered:
        db.release_of[change.delivery_id] = change.release_id
    record = recorded.record
    first_seen_at = change.received_at if current is None else min(current.first_seen_at, change.received_at)
    if current is not None and current.record == record:
        current.first_seen_at = first_seen_at  # when it was first seen is no change of the release
        return
    db.releases[change.release_id] = ReleaseRow(record, first_seen_at, now)
    db.changes.append(("release", str(change.release_id)))


def _create_jobs(db: MemoryDatabase, delivery: StoredDelivery, targets: Sequence[ForwardTarget], now: float) -> bool:
    """The original (generation 0) job per target, unless it exists: recording again never duplicates."""
    created = False
    for target in targets:
        ids = db.jobs_of.setdefault((delivery.seq, target.destination), [])
        if any(db.jobs[i].generation == 0 for i in ids):
            continue
        db.last_job += 1
        db.jobs[db.last_job] = JobRow(
            id=db.last_job,
            delivery_seq=delivery.seq,
            delivery_id=delivery.delivery_id,
            destination=target.destination,
            route=target.route,
            generation=0,
            replay=False,
            received_at=delivery.received_at,
            created_at=now,
            next_attempt_at=now,
        )
        ids.append(db.last_job)
        created = True
    return created
