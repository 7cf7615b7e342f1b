"""The PostgreSQL inbox (the PostgreSQL-only profile): `deliveries` and their `delivery_states`, claimed with
`FOR UPDATE SKIP LOCKED`.

- An append is one statement (one transaction): the delivery, unless its id is recorded (ADR 0010's dedupe key,
  `ON CONFLICT (delivery_id) DO NOTHING`), its state row, and a NOTIFY that wakes the workers of every process.
- A claim takes the oldest due rows that no other claimer holds (`SKIP LOCKED`: concurrent claimers never wait
  for, or take, each other's rows), bounded by count and by bytes exactly as SQLite's is, and gives each a lease
  (`lease_until`, on the injected clock) and a new claim token (`claim`, from the sequence `delivery_claims`).
- Settling and extending name the token: a claim whose lease ran out and that was claimed again, or one settled
  already (settling resets the token), changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from ghingest.adapters.postgres.connection import WORK, PostgresResources
from ghingest.adapters.sql import queries
from ghingest.adapters.sql.settling import settlement_rows
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.processing import StoredDelivery
from ghingest.ports.inbox import Claimed, InboxCapabilities, Settlement

_APPEND = (
    "WITH d AS (INSERT INTO deliveries (delivery_id, event, hook_id, content_kind, headers, body,"  # noqa: S608
    " secret_index, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (delivery_id) DO NOTHING"
    " RETURNING seq, length(body) AS size),"
    " s AS (INSERT INTO delivery_states (seq, size) SELECT seq, size FROM d RETURNING seq)"
    f" SELECT seq, pg_notify('{WORK}', '') FROM s"
)
_DUE = "status = 'received' AND next_attempt_at <= %(now)s AND lease_until <= %(now)s"
# A due row is taken while the bodies before it in the batch total less than the budget (so the first always is);
# the window runs over the `limit` oldest due rows this claimer could lock.
_CLAIM = (
    f"WITH locked AS (SELECT seq, size FROM delivery_states WHERE {_DUE}"  # noqa: S608 - fixed text
    "  ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
    " picked AS (SELECT seq FROM (SELECT seq, size, sum(size) OVER (ORDER BY seq) AS total FROM locked) w"
    "  WHERE total - size < %(budget)s)"
    " UPDATE delivery_states s SET lease_until = %(until)s, claim = nextval('delivery_claims')"
    " FROM picked, deliveries d WHERE s.seq = picked.seq AND d.seq = s.seq"
    " RETURNING d.seq, d.delivery_id, d.event, d.hook_id, d.content_kind, d.headers, d.body, d.received_at,"
    " d.secret_index, s.attempts, s.claim"
)
_SETTLE = (
    "UPDATE delivery_states SET status = %s, processed_at = coalesce(processed_at, %s), attempts = %s,"
    " lease_until = 0, claim = 0 WHERE seq = %s AND claim = %s AND status = 'received'"
)
_SETTLE_RETRY = (
    "UPDATE delivery_states SET attempts = %s, next_attempt_at = %s, lease_until = 0, claim = 0"
    " WHERE seq = %s AND claim = %s AND status = 'received'"
)
_EXTEND = "UPDATE delivery_states SET lease_until = %s WHERE seq = %s AND claim = %s AND status = 'received'"
_REQUEUE = (
    "UPDATE delivery_states s SET status = 'received', attempts = 0, next_attempt_at = 0, lease_until = 0,"
    " claim = 0, error = NULL FROM deliveries d, unnest(%s::integer[], %s::text[]) AS r(seq, delivery_id)"
    " WHERE s.seq = r.seq AND d.seq = r.seq AND d.delivery_id = r.delivery_id RETURNING s.seq"
)
_NOTIFY_WORK = f"SELECT pg_notify('{WORK}', '')"
_ANY_DUE = f"SELECT EXISTS (SELECT 1 FROM delivery_states WHERE {_DUE})"  # noqa: S608 - fixed text
_NO_BUDGET = 2**62
# A write that commits: assigning a transaction id fails on a read-only server (a standby, a read-only database).
WRITE_PROBE = "SELECT pg_current_xact_id()"


@dataclass(frozen=True, slots=True)
class PostgresClaim:
    """A claim handle: the delivery's row, the attempts made before the claim, and the claim's token."""

    seq: int
    attempts: int
    token: int


class PostgresInbox:
    capabilities = InboxCapabilities()

    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        row = (
            delivery.delivery_id,
            delivery.event,
            delivery.hook_id,
            delivery.content_kind.value,
            orjson.dumps(delivery.headers).decode("utf-8"),
            delivery.body,
            delivery.secret_index,
            received_at,
        )
        stored = bool(await self._db.fetch(_APPEND, row))
        if stored:
            self._db.notify_local(WORK)
        return stored

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        if limit <= 0:
            return []
        now = self._db.clock.now()
        params = {
            "now": now,
            "limit": limit,
            "budget": _NO_BUDGET if max_bytes is None else max_bytes,
            "until": now + lease_seconds,
        }
        rows = await self._db.fetch(_CLAIM, params)
        claimed = [Claimed(queries.stored_delivery(row[:10]), PostgresClaim(row[0], row[9], row[10])) for row in rows]
        claimed.sort(key=lambda c: c.delivery.seq)
        return claimed

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """The store records each outcome in the same rows (`PostgresStore.record_outcomes`), so after it this
        only confirms; alone (another store), it moves the rows itself. Idempotent either way."""
        if not settlements:
            return
        done, retry = settlement_rows(settlements, self._db.clock.now(), _claim_of)
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            if done:
                await cursor.executemany(_SETTLE, done)
            if retry:
                await cursor.executemany(_SETTLE_RETRY, retry)
                await cursor.execute(_NOTIFY_WORK)
        if retry:
            self._db.notify_local(WORK)

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        until = self._db.clock.now() + lease_seconds
        rows = [(until, claim.seq, claim.token) for claim in map(_handle, handles)]
        if rows:
            async with self._db.transaction() as conn, conn.cursor() as cursor:
                await cursor.executemany(_EXTEND, rows)

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        if not deliveries:
            return 0
        seqs = [d.seq for d in deliveries]
        ids = [d.delivery_id for d in deliveries]
        async with self._db.transaction() as conn:
            requeued = len(await (await conn.execute(_REQUEUE, (seqs, ids))).fetchall())
            if requeued:
                await conn.execute(_NOTIFY_WORK)
        if requeued:
            self._db.notify_local(WORK)
        return requeued

    async def wait_for_work(self, timeout: float) -> None:
        await self._db.wait(WORK, timeout, self._any_due)

    async def _any_due(self) -> bool:
        return bool(await self._db.scalar(_ANY_DUE.replace("%(now)s", "%s"), (self._db.clock.now(),) * 2))

    async def depth(self) -> int:
        return int(await self._db.scalar("SELECT count(*) FROM delivery_states WHERE status = 'received'") or 0)

    async def oldest_waiting_at(self) -> float | None:
        value = await self._db.scalar(queries.OLDEST_WAITING)
        return None if value is None else float(value)

    async def ping(self) -> None:
        await self._db.scalar(WRITE_PROBE)


def _claim_of(handle: object) -> tuple[int, int, int]:
    claim = _handle(handle)
    return claim.seq, claim.attempts, claim.token


def _handle(handle: object) -> PostgresClaim:
    if not isinstance(handle, PostgresClaim):
        raise TypeError("not a claim of this inbox")
    return handle
