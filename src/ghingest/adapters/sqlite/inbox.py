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
from typing import Any

import orjson

from ghingest.adapters.sqlite.notifier import Notifier
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import InsertIfNew, SqliteWriter
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.processing import StoredDelivery
from ghingest.core.time import now

# Appends waiting in one group commit become one multi-row INSERT (see SqliteWriter.insert_if_new).
_APPEND = InsertIfNew(
    table="deliveries",
    columns=("delivery_id", "event", "hook_id", "content_kind", "headers", "body", "secret_index", "received_at"),
    key="delivery_id",
)
# Claiming touches only the small `delivery_states` rows; the immutable delivery rows are read afterwards.
# Another hook (or a redelivery) sent a delivery id already recorded (docs/adr/0010-dedupe-key.md).
_SIGHTING = (
    "INSERT INTO delivery_sightings (delivery_id, hook_id, first_at, last_at, count, same_body, secret_index)"
    " VALUES (?, ?, ?, ?, 1, coalesce(? = (SELECT body FROM deliveries WHERE delivery_id = ?), 0), ?)"
    " ON CONFLICT (delivery_id, hook_id) DO UPDATE SET last_at = excluded.last_at, count = count + 1,"
    " same_body = same_body AND excluded.same_body, secret_index = excluded.secret_index"
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


class SqliteInbox:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader, work: Notifier) -> None:
        self._writer = writer
        self._reader = reader
        self._work = work
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
        else:  # a delivery id already recorded: count this hook's delivery of it, durably, before answering
            sighting = (delivery.delivery_id, delivery.hook_id or "", received_at, received_at, delivery.body,
                        delivery.delivery_id, delivery.secret_index)  # fmt: skip
            await self._writer.run(lambda conn: conn.execute(_SIGHTING, sighting))
        return stored

    async def claim(
        self, *, limit: int, lease_seconds: float, max_bytes: int | None = None
    ) -> Sequence[StoredDelivery]:
        deadline = time.monotonic() + MAX_CLAIM_DEFER
        while self.append_load() > APPEND_PRESSURE and time.monotonic() < deadline:  # noqa: ASYNC110 - a rate, no event
            await asyncio.sleep(0.01)
        at = now()
        budget = _NO_BUDGET if max_bytes is None else max_bytes

        def claim(conn: sqlite3.Connection) -> list[StoredDelivery]:
            attempts = dict(conn.execute(_CLAIM, (at + lease_seconds, at, at, limit, budget)).fetchall())
            if not attempts:
                return []
            rows = conn.execute(_CLAIMED, (orjson.dumps(list(attempts)).decode(),)).fetchall()
            return [_stored(row, attempts[row[0]]) for row in rows]

        claimed = await self._writer.run(claim, savepoint=False)
        claimed.sort(key=lambda d: d.seq)
        return claimed

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)

    async def depth(self) -> int:
        return await self._reader.scalar_int("SELECT count(*) FROM delivery_states WHERE status = 'received'")


def _stored(row: Any, attempts: int) -> StoredDelivery:
    seq, delivery_id, event, hook_id, kind, headers, body, received_at, secret_index = row
    return StoredDelivery(
        seq=seq,
        delivery_id=delivery_id,
        event=event,
        hook_id=hook_id,
        content_kind=ContentKind(kind),
        headers=orjson.loads(headers),
        body=bytes(body),
        received_at=received_at,
        secret_index=secret_index,
        attempts=attempts,
    )
