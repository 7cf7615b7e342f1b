"""The PostgreSQL forward queue and log: `forward_jobs` (the outbox, created by the store's transaction),
`forward_attempts` and `forward_stats`, shared by any number of forwarders.

- A claim takes a destination's oldest due jobs that no other claimer holds (`FOR UPDATE SKIP LOCKED`), moves
  them to `delivering` with their lease's end in `next_attempt_at` (on the injected clock) and names this
  forwarder in `lease_owner` (a random id per queue object: per process).
- Many forwarders share the database (`single_forwarder = False`): `release` touches only jobs this forwarder
  holds, `recover` only leases that ran out (due again anyway); an attempt is recorded only for a job this
  forwarder still holds, so a forwarder whose lease ran out and whose job went to another records nothing.
- Forwarders are woken by NOTIFY (jobs created, released, replayed or due again), with polling as the fallback.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg.errors

from ghingest.adapters.postgres.connection import FORWARDS, PostgresResources, clean, pyformat
from ghingest.adapters.sql import forwarding as sql
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports.forwarding import (
    AttemptResult,
    DestinationStats,
    ForwardJob,
    ForwardQueueCapabilities,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
)

_CLAIM = (
    f"WITH due AS (SELECT id FROM forward_jobs WHERE destination = %s AND {sql.ACTIVE}"  # noqa: S608 - fixed text
    " AND next_attempt_at <= %s ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)"
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
    " WHERE id = ANY(%s) AND status = 'delivering' AND lease_owner = %s"
)
# At a forwarder's start, no lease can be known to be a crashed forwarder's (another may be delivering): only
# leases that ran out (due again already) lose their owner, so that a forwarder that comes back late records
# nothing over another's attempt.
_RECOVER = "UPDATE forward_jobs SET lease_owner = NULL WHERE status = 'delivering' AND next_attempt_at <= %s"
_SUPERSEDE = pyformat(sql.SUPERSEDE)
_INSERT_REPLAY = pyformat(sql.INSERT_REPLAY) + " ON CONFLICT DO NOTHING"  # a concurrent replay made that generation
_NOTIFY = f"SELECT pg_notify('{FORWARDS}', '')"


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
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            for result in results:
                await cursor.execute(_RECORD, clean((*sql.record_params(result), self.owner)))
                row = await cursor.fetchone()
                if row is None:
                    continue  # not held any more (its lease ran out and it went elsewhere)
                attempt, stats = sql.logged_params(result, *row)
                await cursor.execute(_ATTEMPT, clean(attempt))
                await cursor.execute(_STATS, clean(stats))
            if any(r.next_status is ForwardStatus.RETRY for r in results):
                await cursor.execute(_NOTIFY)
        self._db.notify_local(FORWARDS)

    async def release(self, job_ids: Sequence[int]) -> int:
        if not job_ids:
            return 0
        return await self._update(_RELEASE, (self._db.clock.now(), list(job_ids), self.owner))

    async def recover(self) -> int:
        return await self._update(_RECOVER, (self._db.clock.now(),))

    async def _update(self, statement: str, params: tuple[Any, ...]) -> int:
        async with self._db.transaction() as conn:
            count = (await conn.execute(statement, params)).rowcount
            if count:
                await conn.execute(_NOTIFY)
        if count:
            self._db.notify_local(FORWARDS)
        return count

    async def enqueue_replays(self, targets: Sequence[ReplayTarget]) -> int:
        if not targets:
            return 0
        at = self._db.clock.now()
        created = 0
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            for seq, destination, route in targets:
                await cursor.execute(_SUPERSEDE, clean((seq, destination)))
                await cursor.execute(_INSERT_REPLAY, clean((destination, route, destination, at, at, seq)))
                created += cursor.rowcount
            await cursor.execute(_NOTIFY)
        self._db.notify_local(FORWARDS)
        return created

    async def wait_for_work(self, timeout: float) -> None:
        # Only a wake-up, no check of due jobs: a pump waits while it holds jobs, and the method names no destination.
        await self._db.wait(FORWARDS, timeout)


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

    async def stats(self) -> Sequence[DestinationStats]:
        return sql.destination_stats(await self._db.fetch(sql.STATUS_COUNTS), await self._db.fetch(sql.TOTALS))

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
