"""The SQLite inbox: the `deliveries` table, appended to by group commit and claimed with leases.

Appends come first. Receiver and worker share one process, one GIL and one writer thread; under a flood of
deliveries every claim and every recorded batch slows the acknowledgements that GitHub waits for (it gives up
after 10 s). While more than `APPEND_PRESSURE` appends wait for their commit on average (over ~0.1 s), `claim`
waits in steps for the flood to pass, but never more than `MAX_CLAIM_DEFER` seconds, so processing still advances
by at least a batch every two seconds; the inbox absorbs the burst and the worker catches up afterwards
(docs/adr/0007-ingest-and-processing-throughput.md).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ghingest.adapters.sql import queries
from ghingest.adapters.sql.settling import settlement_rows
from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import InsertIfNew, SqliteWriter
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.processing import StoredDelivery
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.inbox import Claimed, InboxCapabilities, Settlement

# Appends waiting in one group commit become one multi-row INSERT (see SqliteWriter.insert_if_new).
_APPEND = InsertIfNew(
    table="deliveries",
    columns=("delivery_id", "event", "hook_id", "content_kind", "headers", "body", "secret_index", "received_at"),
    key="delivery_id",
)
# Claiming touches only the small `delivery_states` rows; the immutable delivery rows are read afterwards.
# Settling a claim: only while the row still holds this claim's lease (not claimed again since, and not recorded
# by the store, which settles the same row in its own transaction: then this is a no-op).
_SETTLE = (
    "UPDATE delivery_states SET status = ?, processed_at = coalesce(processed_at, ?), attempts = ?, lease_until = 0"
    " WHERE seq = ? AND lease_until = ? AND status = 'received'"
)
_SETTLE_RETRY = (
    "UPDATE delivery_states SET attempts = ?, next_attempt_at = ?, lease_until = 0"
    " WHERE seq = ? AND lease_until = ? AND status = 'received'"
)
_EXTEND = "UPDATE delivery_states SET lease_until = ? WHERE seq = ? AND lease_until = ? AND status = 'received'"
_REQUEUE = (
    "UPDATE delivery_states SET status = 'received', attempts = 0, next_attempt_at = 0, lease_until = 0,"
    " error = NULL WHERE seq = ?"
)
# Bounded by count, and by bytes: a due delivery is taken while the bodies before it in the batch total less than
# the budget (so the first always is, and a batch passes the budget by one body at most). The window runs over the
# `limit` oldest due rows, in index order: a claim reads its batch, never the backlog.
_CLAIM = (
    "UPDATE delivery_states SET lease_until = ? WHERE seq IN ("
    " SELECT seq FROM (SELECT seq, size, sum(size) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS total"
    "  FROM delivery_states WHERE status = 'received' AND next_attempt_at <= ? AND lease_until <= ?"
    "  ORDER BY seq LIMIT ?)"
    " WHERE total - size < ?)"
    " RETURNING seq, attempts"
)
_CLAIMED = (
    "SELECT seq, delivery_id, event, hook_id, content_kind, headers, body, received_at, secret_index"
    " FROM deliveries WHERE seq IN (SELECT value FROM json_each(?))"
)
_NO_BUDGET = 2**62
APPEND_PRESSURE = 32.0  # appends waiting for their commit, on average, above which claims wait
MAX_CLAIM_DEFER = 2.0  # seconds a claim waits at most
_WINDOW = 0.1  # seconds: time constant of that average


@dataclass(slots=True)
class _Claim:
    """A claim handle: the delivery's row, the attempts made before the claim, and the lease it holds (the token:
    a later claim of the same row holds another; `extend` moves it)."""

    seq: int
    attempts: int
    lease_until: float


class SqliteInbox:
    capabilities = InboxCapabilities()

    def __init__(
        self, writer: SqliteWriter, reader: SqliteReader, work: Notifier, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._work = work
        self._clock = clock
        self._in_flight = 0  # appends waiting for their commit
        self._load = 0.0  # their time-weighted average (time constant `_WINDOW`), as of `_load_at`
        self._load_at = time.monotonic()

    def append_load(self) -> float:
        """How many appends waited for their commit, on average over about the last `_WINDOW` seconds
        (rate times ack latency: ~1 at 500 deliveries/s, close to the number of connections at saturation)."""
        return self._averaged(time.monotonic())

    def _averaged(self, at: float) -> float:
        decay = math.exp(-(at - self._load_at) / _WINDOW)
        return self._load * decay + self._in_flight * (1.0 - decay)

    def _in_flight_changes(self, delta: int) -> None:
        at = time.monotonic()
        self._load, self._load_at = self._averaged(at), at
        self._in_flight += delta

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        row = (
            delivery.delivery_id,
            delivery.event,
            delivery.hook_id,
            delivery.content_kind.value,
            orjson.dumps(delivery.headers),
            delivery.body,
            delivery.secret_index,
            received_at,
        )
        self._in_flight_changes(+1)
        try:
            stored = await self._writer.insert_if_new(_APPEND, row)
        finally:
            self._in_flight_changes(-1)
        if stored:
            self._work.notify()
        return stored

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        deadline = time.monotonic() + MAX_CLAIM_DEFER
        while self.append_load() > APPEND_PRESSURE and time.monotonic() < deadline:  # noqa: ASYNC110 - a rate, no event
            await asyncio.sleep(0.01)
        at = self._clock.now()
        budget = _NO_BUDGET if max_bytes is None else max_bytes

        def claim(conn: sqlite3.Connection) -> list[Claimed]:
            attempts = dict(conn.execute(_CLAIM, (at + lease_seconds, at, at, limit, budget)).fetchall())
            if not attempts:
                return []
            rows = conn.execute(_CLAIMED, (orjson.dumps(list(attempts)).decode(),)).fetchall()
            until = at + lease_seconds
            return [
                Claimed(queries.stored_delivery(row, attempts[row[0]]), _Claim(row[0], attempts[row[0]], until))
                for row in rows
            ]

        claimed = await self._writer.run(claim, savepoint=False)
        claimed.sort(key=lambda c: c.delivery.seq)
        return claimed

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """In SQLite the store records each outcome in the same rows (`SqliteStore.record_outcomes`), so after it
        this only confirms; alone (no store), it moves the rows itself. Idempotent either way."""
        if not settlements:
            return
        done, retry = settlement_rows(settlements, self._clock.now(), _claim_of)

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(_SETTLE, done)
            conn.executemany(_SETTLE_RETRY, retry)

        await self._writer.run(work)
        if retry:
            self._work.notify()

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        until = self._clock.now() + lease_seconds
        claims = [_handle(handle) for handle in handles]
        rows = [(until, claim.seq, claim.lease_until) for claim in claims]
        extended: list[bool] = await self._writer.run(
            lambda conn: [conn.execute(_EXTEND, r).rowcount == 1 for r in rows]
        )
        for claim, held in zip(claims, extended, strict=True):
            if held:
                claim.lease_until = until

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        seqs = [(delivery.seq,) for delivery in deliveries]
        count: int = await self._writer.run(lambda conn: conn.executemany(_REQUEUE, seqs).rowcount)
        if count:
            self._work.notify()
        return count

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)

    async def depth(self) -> int:
        return await self._reader.scalar_int("SELECT count(*) FROM delivery_states WHERE status = 'received'")

    async def oldest_waiting_at(self) -> float | None:
        value = await self._reader.run(lambda conn: conn.exec_driver_sql(queries.OLDEST_WAITING).scalar())
        return None if value is None else float(value)

    async def ping(self) -> None:
        await self._writer.run(lambda _conn: None)  # appends go through the same writer


def _claim_of(handle: object) -> tuple[int, int, float]:
    claim = _handle(handle)
    return claim.seq, claim.attempts, claim.lease_until


def _handle(handle: object) -> _Claim:
    if not isinstance(handle, _Claim):
        raise TypeError("not a claim of this inbox")
    return handle
