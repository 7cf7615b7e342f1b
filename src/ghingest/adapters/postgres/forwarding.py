"""The PostgreSQL forward queue and log: `forward_jobs` (the outbox, created by the store's transaction),
`forward_attempts` and `forward_stats`, shared by any number of forwarders.

- A claim takes a destination's oldest due jobs that no other claimer holds (`FOR UPDATE SKIP LOCKED`), moves
  them to `delivering` with their lease's end in `next_attempt_at` (on the injected clock) and names this
  forwarder in `lease_owner` (a random id per queue object: per process).
- Many forwarders share the database (`single_forwarder = False`): `release` touches only jobs this forwarder
  holds, `recover` only leases that ran out (due again anyway); an attempt is recorded only for a job this
  forwarder still holds, so a forwarder whose lease ran out and whose job went to another records nothing.
- Forwarders are woken by NOTIFY (jobs created, released, replayed or due again), with polling as the fallback.
- A transaction that moves jobs (an attempt, a release, a recovery, a replay) ends with a `forward` change per
  delivery it touched (`store.append_changes`: under the change feed's lock, so that changes commit in order).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg.errors

from ghingest.adapters.postgres.connection import CHANGES, FORWARDS, PostgresResources, clean, pyformat
from ghingest.adapters.postgres.store import append_changes
from ghingest.adapters.sql import forwarding as sql
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports.forwarding import (
    AttemptResult,
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

_CLAIM = (
    f"WITH due AS (SELECT id FROM forward_jobs WHERE destination = %s AND {sql.ACTIVE}"  # noqa: S608 - fixed text
    f" AND next_attempt_at <= %s AND {sql.NOT_PAUSED} ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
    " UPDATE forward_jobs j SET status = 'delivering', next_attempt_at = %s, lease_owner = %s"
    " FROM due, deliveries d WHERE j.id = due.id AND d.seq = j.delivery_seq"
    " RETURNING j.id, j.delivery_seq, j.delivery_id, j.destination, j.route, j.replay, j.attempts, j.received_at,"
    " j.first_attempt_at, d.event, d.content_kind, d.headers, d.body"
)
_RECORD = pyformat(sql.RECORD.format(held=" AND lease_owner = ?"))
_ATTEMPT = pyformat(sql.ATTEMPT)
_STATS = pyformat(sql.STATS)
_RELEASE = (
    "UPDATE forward_jobs SET next_attempt_at = %s, lease_owner = NULL"
    " WHERE id = ANY(%s) AND status = 'delivering' AND lease_owner = %s RETURNING delivery_id"
)
# At a forwarder's start, no lease can be known to be a crashed forwarder's (another may be delivering): only
# leases that ran out (due again already) lose their owner, so that a forwarder that comes back late records
# nothing over another's attempt.
_RECOVER = (
    "UPDATE forward_jobs SET lease_owner = NULL WHERE status = 'delivering' AND next_attempt_at <= %s"
    " RETURNING delivery_id"
)
_SUPERSEDE = pyformat(sql.SUPERSEDE)
# ON CONFLICT: a concurrent replay made that generation.
_INSERT_REPLAY = pyformat(sql.INSERT_REPLAY) + " ON CONFLICT DO NOTHING RETURNING delivery_id"
_NOTIFY = f"SELECT pg_notify('{FORWARDS}', '')"
_PAUSE = pyformat(sql.PAUSE)
_PAUSE_OF = pyformat(sql.PAUSE_OF) + " FOR UPDATE"
_UNPAUSE = pyformat(sql.UNPAUSE)
_CREDIT_PAUSE = pyformat(sql.CREDIT_PAUSE)
_RECORD_TEST = pyformat(sql.RECORD_TEST)
# PostgreSQL's percentile_disc is the nearest rank (`core.destination_health.nearest_rank`), as the others compute it.
_WINDOW = pyformat(
    sql.WINDOW_COUNTS.replace(
        " FROM ",
        ", percentile_disc(0.5) WITHIN GROUP (ORDER BY latency),"
        " percentile_disc(0.95) WITHIN GROUP (ORDER BY latency) FROM ",
        1,
    )
)
_RECENT = pyformat(sql.RECENT)
_RECOVERED = pyformat(sql.RECOVERED)


class PostgresForwardQueue:
    capabilities = ForwardQueueCapabilities(single_forwarder=False)

    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources
        self.owner = uuid.uuid4().hex  # this forwarder, in `forward_jobs.lease_owner`

    async def claim(self, destination: str, *, limit: int, lease_seconds: float) -> Sequence[ForwardJob]:
        if limit <= 0:
            return []
        now = self._db.clock.now()
        rows = await self._db.fetch(_CLAIM, (destination, now, limit, now + lease_seconds, self.owner))
        jobs = [sql.forward_job(row[:9], *row[9:]) for row in rows]
        jobs.sort(key=lambda job: job.id)
        return jobs

    async def record_attempts(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        moved: list[str] = []  # the delivery id of each job an attempt moved on
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            for result in results:
                await cursor.execute(_RECORD, clean((*sql.record_params(result), self.owner)))
                row = await cursor.fetchone()
                if row is None:
                    continue  # not held any more (its lease ran out and it went elsewhere)
                attempt, stats = sql.logged_params(result, *row[:3])
                await cursor.execute(_ATTEMPT, clean(attempt))
                await cursor.execute(_STATS, clean(stats))
                moved.append(row[3])
            retried = any(r.next_status is ForwardStatus.RETRY for r in results)
            await append_changes(cursor, self._changes(moved), *([FORWARDS] if retried else []))
        self._db.notify_local(CHANGES, FORWARDS)

    async def release(self, job_ids: Sequence[int]) -> int:
        if not job_ids:
            return 0
        return await self._update(_RELEASE, (self._db.clock.now(), list(job_ids), self.owner))

    async def recover(self) -> int:
        return await self._update(_RECOVER, (self._db.clock.now(),))

    async def _update(self, statement: str, params: tuple[Any, ...]) -> int:
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            await cursor.execute(statement, params)
            delivery_ids = [row[0] for row in await cursor.fetchall()]
            if delivery_ids:
                await append_changes(cursor, self._changes(delivery_ids), FORWARDS)
        if delivery_ids:
            self._db.notify_local(CHANGES, FORWARDS)
        return len(delivery_ids)

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        if not targets:
            return 0
        at = self._db.clock.now()
        replayed: list[str] = []  # the delivery id of each job created
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            for seq, destination, route in targets:
                await cursor.execute(_SUPERSEDE, clean((seq, destination)))
                await cursor.execute(_INSERT_REPLAY, clean((destination, route, destination, at, at, seq)))
                replayed += [row[0] for row in await cursor.fetchall()]
            await append_changes(cursor, self._changes(replayed), FORWARDS)
        self._db.notify_local(CHANGES, FORWARDS)
        return len(replayed)

    def _changes(self, delivery_ids: Sequence[str]) -> list[tuple[str, str, float]]:
        """A `forward` change per delivery among `delivery_ids`, in order (one per delivery and transaction)."""
        at = self._db.clock.now()
        return [("forward", delivery_id, at) for delivery_id in dict.fromkeys(delivery_ids)]

    async def wait_for_work(self, timeout: float) -> None:
        # Only a wake-up, no check of due jobs: a pump waits while it holds jobs, and the method names no destination.
        await self._db.wait(FORWARDS, timeout)

    async def pause(self, destination: str, *, by: str) -> DestinationPause:
        rows = await self._db.fetch(_PAUSE, (destination, by, self._db.clock.now()))
        return sql.pause_of(rows[0])

    async def resume(self, destination: str) -> DestinationPause | None:
        at = self._db.clock.now()
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            await cursor.execute(_PAUSE_OF, (destination,))
            row = await cursor.fetchone()
            if row is None:
                return None
            pause = sql.pause_of(row)
            await cursor.execute(_UNPAUSE, (destination,))
            await cursor.execute(_CREDIT_PAUSE, (max(0.0, at - pause.paused_at), destination, at))
            await cursor.execute(_NOTIFY)
        self._db.notify_local(FORWARDS)
        return pause

    async def paused(self) -> Sequence[DestinationPause]:
        return [sql.pause_of(row) for row in await self._db.fetch(sql.PAUSED)]

    async def record_test(self, test: DestinationTest) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_RECORD_TEST, clean(sql.ping_params(test)))


class PostgresForwardLog:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        if selection.repository is not None:
            selection = _with_repository_regex(selection)
        query, params = sql.replay_query(selection, glob="e.repository ~* ?")
        try:
            rows = await self._db.fetch(pyformat(query), params)
        except psycopg.errors.InvalidRegularExpression:  # a glob no name can match (`[z-a]`)
            return []
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    async def target_deliveries(self, seqs: Sequence[int]) -> Sequence[TargetDelivery]:
        if not seqs:
            return []
        rows = await self._db.fetch(pyformat(sql.target_deliveries_query(seqs)), list(seqs))
        return sql.target_deliveries(rows, seqs)

    async def stats(self) -> Sequence[DestinationStats]:
        return sql.destination_stats(await self._db.fetch(sql.STATUS_COUNTS), await self._db.fetch(sql.TOTALS))

    async def activity(self, windows: Sequence[float], *, recent: int) -> Sequence[DestinationActivity]:
        now = self._db.clock.now()
        out = []
        async with self._db.connection() as conn, conn.cursor() as cursor:
            await cursor.execute(sql.ACTIVE_DESTINATIONS)
            for name, error_at in await cursor.fetchall():
                figures = []
                for seconds in windows:
                    await cursor.execute(_WINDOW, (name, now - seconds))
                    counts = await cursor.fetchone()
                    assert counts is not None  # an aggregate has a row
                    figures.append(sql.window_figures(seconds, counts[:3], counts[3], counts[4]))
                await cursor.execute(_RECENT, (name, max(0, recent)))
                latest = await cursor.fetchall()
                recovered = None
                if error_at is not None:
                    await cursor.execute(_RECOVERED, (name, error_at))
                    found = await cursor.fetchone()
                    recovered = found[0] if found is not None else None
                out.append(sql.destination_activity(name, tuple(figures), latest, recovered))
        return out

    async def tests(self) -> Sequence[DestinationTest]:
        return [sql.ping_of(row) for row in await self._db.fetch(sql.TESTS)]

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        seq = await self._db.scalar(pyformat(sql.SEQ_OF), (delivery_id,))
        if seq is None:
            return []
        attempts = await self._db.fetch(pyformat(sql.ATTEMPTS_OF), (seq,))
        return sql.forward_views(await self._db.fetch(pyformat(sql.JOBS_OF), (seq,)), attempts)

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        query, params = sql.dead_letters_query(destination, before_id, limit)
        return sql.forward_views(await self._db.fetch(pyformat(query), params))

    async def dead_lettered_since(self, since: float) -> int:
        return int(await self._db.scalar(pyformat(sql.DEAD_SINCE), (since,)) or 0)


def glob_regex(pattern: str) -> str:
    """A glob (`*`, `?`, `[...]`, as SQLite's GLOB reads it) as an anchored POSIX regular expression."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^", "]") else i + 1)) > i:
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.sub(r"([\\.^$|()\[\]{}*+?])", r"\\\1", c))
        i += 1
    return "".join(out) + "$"


def _with_repository_regex(selection: ReplaySelection) -> ReplaySelection:
    assert selection.repository is not None
    return dataclasses.replace(selection, repository=glob_regex(selection.repository))
