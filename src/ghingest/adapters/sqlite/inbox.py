"""The SQLite inbox: the `deliveries` table, appended to by group commit and claimed with leases.

Appends come first. Receiver and worker share one process, one GIL and one writer thread; under a flood of
deliveries every claim and every recorded batch slows the acknowledgements that GitHub waits for (it gives up
after 10 s). While appends arrive faster than `APPEND_PRESSURE` per second, `claim` waits in steps for the flood
to pass, but never more than `MAX_CLAIM_DEFER` seconds, so processing still advances by at least a batch per
step; the inbox absorbs the burst and the worker catches up afterwards
(docs/adr/0006-ingest-and-processing-throughput.md).
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
_CLAIM = (
    "UPDATE deliveries SET lease_until = ? WHERE seq IN ("
    " SELECT seq FROM deliveries WHERE status = 'received' AND next_attempt_at <= ? AND lease_until <= ?"
    " ORDER BY seq LIMIT ?)"
    " RETURNING seq, delivery_id, event, hook_id, content_kind, headers, body, received_at, secret_index, attempts"
)
APPEND_PRESSURE = 2_000.0  # appends/s above which claims wait
MAX_CLAIM_DEFER = 0.25  # seconds a claim waits at most
_RATE_WINDOW = 0.1  # seconds: time constant of the append-rate estimate


class SqliteInbox:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader, work: Notifier) -> None:
        self._writer = writer
        self._reader = reader
        self._work = work
        self._rate = 0.0  # appends/s, exponentially decayed, as of `_rate_at`
        self._rate_at = time.monotonic()

    def append_rate(self) -> float:
        """Recent appends per second (an exponentially weighted estimate over about `_RATE_WINDOW`)."""
        return self._rate * math.exp(-(time.monotonic() - self._rate_at) / _RATE_WINDOW)

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
        self._rate = self.append_rate() + 1.0 / _RATE_WINDOW
        self._rate_at = time.monotonic()
        stored = await self._writer.insert_if_new(_APPEND, row)
        if stored:
            self._work.notify()
        return stored

    async def claim(self, *, limit: int, lease_seconds: float) -> Sequence[StoredDelivery]:
        deadline = time.monotonic() + MAX_CLAIM_DEFER
        while self.append_rate() > APPEND_PRESSURE and time.monotonic() < deadline:  # noqa: ASYNC110 - a rate, no event
            await asyncio.sleep(0.01)
        at = now()

        def claim(conn: sqlite3.Connection) -> list[StoredDelivery]:
            rows = conn.execute(_CLAIM, (at + lease_seconds, at, at, limit)).fetchall()
            return [_stored(row) for row in rows]

        claimed = await self._writer.run(claim, savepoint=False)
        claimed.sort(key=lambda d: d.seq)
        return claimed

    async def wait_for_work(self, timeout: float) -> None:
        await self._work.wait(timeout)

    async def depth(self) -> int:
        return await self._reader.scalar_int("SELECT count(*) FROM deliveries WHERE status = 'received'")


def _stored(row: Any) -> StoredDelivery:
    seq, delivery_id, event, hook_id, kind, headers, body, received_at, secret_index, attempts = row
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
