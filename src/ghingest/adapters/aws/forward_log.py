"""The forward log on DynamoDB: what the dashboard and the API read of forwarding (docs/aws/dynamodb.md, patterns
12-14): a delivery's jobs with their attempts, dead letters newest first (the sparse `DEAD` index partition), and
per-destination counts (one `DESTS` item each, moved in the same transactions as the jobs). Replay selections are
`replays`'.

Health (pattern 22): every attempt item is in its destination's gsi3 partition `ATTS#<destination>`, sorted by its
start. A window reads the longest window's items (start, latency and outcome only) and counts and ranks them here,
with `core.destination_health.figures`: its cost grows with the attempts of the last 24 hours. The most recent
attempts are the partition's last few; recovery, its first delivered attempt after the last error.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from ghingest.adapters.aws import keys, pauses
from ghingest.adapters.aws.job_items import attempt_view, forward_view, jobs_of
from ghingest.adapters.aws.replays import replay_targets, target_deliveries
from ghingest.adapters.aws.table import TableContext, float_or_none, query, values
from ghingest.core.destination_health import RecentAttempt, figures
from ghingest.ports import (
    DestinationActivity,
    DestinationStats,
    DestinationTest,
    ForwardView,
    ReplaySelection,
    ReplayTarget,
    TargetDelivery,
)

_ATTEMPT_FIELDS = {"#started": "started_at", "#latency": "latency", "#outcome": "outcome"}


class AwsForwardLog:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        return await self._db.run("forward_log.replay_targets", replay_targets, self._db, selection)

    async def target_deliveries(self, seqs: Sequence[int]) -> Sequence[TargetDelivery]:
        return await self._db.run("forward_log.target_deliveries", target_deliveries, self._db, seqs)

    async def stats(self) -> Sequence[DestinationStats]:
        return await self._db.run("forward_log.stats", self._stats)

    async def activity(self, windows: Sequence[float], *, recent: int) -> Sequence[DestinationActivity]:
        return await self._db.run("forward_log.activity", self._activity, list(windows), recent)

    async def tests(self) -> Sequence[DestinationTest]:
        return await self._db.run("forward_log.tests", pauses.tests, self._db)

    async def forwards_of(self, delivery_id: str) -> Sequence[ForwardView]:
        return await self._db.run("forward_log.forwards_of", self._forwards_of, delivery_id)

    async def dead_letters(
        self, *, destination: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> Sequence[ForwardView]:
        if limit <= 0:
            return []
        return await self._db.run("forward_log.dead_letters", self._dead_letters, destination, before_id, limit)

    async def dead_lettered_since(self, since: float) -> int:
        return await self._db.run("forward_log.dead_lettered_since", self._dead_since, since)

    def _dead_since(self, since: float) -> int:
        """The sparse `DEAD` partition (dead letters only: few), filtered by when each died."""
        jobs = query(
            self._db,
            IndexName="gsi2",
            KeyConditionExpression="gsi2pk = :dead",
            FilterExpression="completed_at >= :since",
            ExpressionAttributeValues=values(dead=keys.DEAD, since=since),
        )
        return sum(1 for _ in jobs)

    def _stats(self) -> list[DestinationStats]:
        items = self._destination_items()
        return [
            DestinationStats(
                destination=str(s["sk"]),
                queued=int(s.get("queued", 0)),
                dead=int(s.get("dead", 0)),
                attempts=int(s.get("attempts", 0)),
                delivered=int(s.get("delivered", 0)),
                failed=int(s.get("failed", 0)),
                last_attempt_at=float_or_none(s.get("last_attempt_at")),
                last_success_at=float_or_none(s.get("last_success_at")),
                last_error=s.get("last_error"),
                last_error_at=float_or_none(s.get("last_error_at")),
            )
            for s in items
        ]

    def _activity(self, windows: list[float], recent: int) -> list[DestinationActivity]:
        now = self._db.clock.now()
        out = []
        for counts in self._destination_items():
            if not int(counts.get("attempts", 0)):
                continue
            name = str(counts["sk"])
            since = keys.t(now - max(windows, default=0.0))
            logged = [
                (float(a["started_at"]), float(a["latency"]), str(a["outcome"]))
                for a in self._attempts(name, "gsi3sk >= :from", since)
            ]
            latest = itertools.islice(self._attempts(name, newest_first=True, limit=recent), max(0, recent))
            error_at = float_or_none(counts.get("last_error_at"))
            recovered = None
            if error_at is not None:
                after = keys.t(error_at) + "#~"  # after every attempt that started at `error_at`
                found = next(iter(self._attempts(name, "gsi3sk > :from", after, delivered=True)), None)
                recovered = float(found["started_at"]) if found is not None else None
            out.append(
                DestinationActivity(
                    destination=name,
                    windows=tuple(
                        figures(w, [(latency, outcome) for at, latency, outcome in logged if at >= now - w])
                        for w in windows
                    ),
                    recent=tuple(RecentAttempt(float(a["started_at"]), a["outcome"] == "delivered") for a in latest),
                    recovered_at=recovered,
                )
            )
        return out

    def _attempts(
        self,
        destination: str,
        condition: str | None = None,
        bound: str | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
        delivered: bool = False,
    ) -> Any:
        """A destination's attempt items (start, latency, outcome) from its gsi3 partition, oldest first."""
        plain: dict[str, Any] = {"attempts": keys.attempts_of(destination)}
        arguments: dict[str, Any] = {}
        expression = "gsi3pk = :attempts"
        if condition is not None:
            expression += f" AND {condition}"
            plain["from"] = bound
        if delivered:
            arguments["FilterExpression"] = "#outcome = :delivered"
            plain["delivered"] = "delivered"
        if limit:
            arguments["Limit"] = limit
        return query(
            self._db,
            IndexName="gsi3",
            KeyConditionExpression=expression,
            ProjectionExpression="#started, #latency, #outcome",
            ExpressionAttributeNames=_ATTEMPT_FIELDS,
            ExpressionAttributeValues=values(**plain),
            ScanIndexForward=not newest_first,
            **arguments,
        )

    def _destination_items(self) -> Any:
        return query(
            self._db,
            KeyConditionExpression="pk = :dests",
            ExpressionAttributeValues=values(dests=keys.DESTINATIONS),
            ConsistentRead=True,
        )

    def _forwards_of(self, delivery_id: str) -> list[ForwardView]:
        views = []
        for job in jobs_of(self._db, delivery_id):
            attempts = query(
                self._db,
                KeyConditionExpression="pk = :job AND begins_with(sk, :attempt)",
                ExpressionAttributeValues=values(job=keys.job_pk(int(job["job_id"])), attempt=keys.ATTEMPT_PREFIX),
                ConsistentRead=True,
            )
            views.append(forward_view(job, tuple(attempt_view(a) for a in attempts)))
        return views

    def _dead_letters(self, destination: str | None, before_id: int | None, limit: int) -> list[ForwardView]:
        condition, plain = "gsi2pk = :dead", {"dead": keys.DEAD}
        if before_id is not None:
            condition += " AND gsi2sk < :before"
            plain["before"] = keys.n20(max(0, before_id))
        extra: dict[str, Any] = {}
        if destination is not None:
            extra = {"FilterExpression": "destination = :destination"}
            plain["destination"] = destination
        views = []
        for job in query(
            self._db,
            IndexName="gsi2",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values(**plain),
            ScanIndexForward=False,
            **extra,
        ):
            views.append(forward_view(job, ()))
            if len(views) >= limit:
                break
        return views
