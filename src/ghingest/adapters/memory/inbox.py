"""The memory inbox: deliveries in seq order, claimed with leases on the injected clock.

A delivery is due while it is pending (not settled), its due time has come and no lease hides it. A claim gives it
a new claim token; its handle carries that token, so settling or extending a stale claim (one whose lease ran out
and that another claimer took, or one requeued since) changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ghingest.adapters.memory.signal import wait
from ghingest.adapters.memory.tables import DeliveryRow, MemoryDatabase
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.processing import StoredDelivery, at_receipt
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Claimed, InboxCapabilities, Settle, Settlement


@dataclass(frozen=True, slots=True)
class MemoryHandle:
    seq: int
    claim: int


class MemoryInbox:
    capabilities = InboxCapabilities(max_payload_bytes=None, requeue=True)

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        with self._db.transaction() as db:
            if delivery.delivery_id in db.seq_of:
                return False
            db.last_seq += 1
            stored = at_receipt(delivery, seq=db.last_seq, received_at=received_at)
            db.deliveries[stored.seq] = DeliveryRow(stored, due_at=received_at)
            db.seq_of[stored.delivery_id] = stored.seq
            db.pending.add(stored.seq)
        db.work.notify()
        return True

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        with self._db.transaction() as db:
            now = db.now()
            claimed: list[Claimed] = []
            taken_bytes = 0
            for row in _due(db, now):
                if len(claimed) >= limit or (max_bytes is not None and claimed and taken_bytes >= max_bytes):
                    break
                db.last_claim += 1
                row.claim, row.lease_until = db.last_claim, now + lease_seconds
                taken_bytes += row.size
                delivery = dataclasses.replace(row.delivery, attempts=row.attempts)
                claimed.append(Claimed(delivery=delivery, handle=MemoryHandle(row.seq, row.claim)))
            return claimed

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        with self._db.transaction() as db:
            now = db.now()
            for settlement in settlements:
                row = _held(db, settlement.handle)
                if row is None:
                    continue
                row.attempts += 1
                row.claim, row.lease_until = 0, 0.0
                if settlement.outcome is Settle.RETRY:
                    row.due_at = now if settlement.retry_at is None else settlement.retry_at
                else:  # DONE, FAILED: never claimed again, until requeued
                    db.pending.discard(row.seq)
        if any(s.outcome is Settle.RETRY for s in settlements):
            self._db.work.notify()

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        with self._db.transaction() as db:
            until = db.now() + lease_seconds
            for handle in handles:
                row = _held(db, handle)
                if row is not None:
                    row.lease_until = until

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        with self._db.transaction() as db:
            now = db.now()
            count = 0
            for delivery in deliveries:
                row = db.deliveries.get(delivery.seq)
                if row is None or row.delivery.delivery_id != delivery.delivery_id:
                    continue
                db.pending.add(row.seq)
                row.due_at, row.lease_until, row.claim, row.attempts = now, 0.0, 0, 0
                # The read side shows it as received again (one database: the SQLite backend does the same).
                row.status, row.recorded_attempts, row.error = DeliveryStatus.RECEIVED, 0, None
                count += 1
        if count:
            self._db.work.notify()
        return count

    async def wait_for_work(self, timeout: float) -> None:
        event = self._db.work.register()
        with self._db.transaction() as db:
            if next(_due(db, db.now()), None) is not None:
                return  # due already (a lease ran out, a retry came due, or an append came before this call)
        await wait(event, timeout)

    async def depth(self) -> int:
        with self._db.transaction() as db:
            return len(db.pending)

    async def oldest_waiting_at(self) -> float | None:
        with self._db.transaction() as db:
            return db.deliveries[min(db.pending)].delivery.received_at if db.pending else None

    async def ping(self) -> None:
        with self._db.transaction():
            pass


def _due(db: MemoryDatabase, now: float) -> Iterator[DeliveryRow]:
    """Due deliveries, oldest (lowest seq) first."""
    for seq in sorted(db.pending):
        row = db.deliveries[seq]
        if row.due_at <= now and row.lease_until <= now:
            yield row


def _held(db: MemoryDatabase, handle: object) -> DeliveryRow | None:
    """The row `handle` still holds, or None for a stale claim."""
    if not isinstance(handle, MemoryHandle):
        raise TypeError(f"not a claim handle of the memory inbox: {type(handle).__name__}")
    row = db.deliveries.get(handle.seq)
    if row is None or row.seq not in db.pending or row.claim != handle.claim:
        return None
    return row
