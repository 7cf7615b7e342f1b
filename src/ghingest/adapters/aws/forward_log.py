"""The forward log on DynamoDB: what the dashboard and the API read of forwarding (docs/aws/dynamodb.md, patterns
12-14): a delivery's jobs with their attempts, dead letters newest first (the sparse `DEAD` index partition), and
per-destination counts (one `DESTS` item each, moved in the same transactions as the jobs). Replay selections are
`replays`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.job_items import attempt_view, forward_view, jobs_of
from ghingest.adapters.aws.replays import replay_targets
from ghingest.adapters.aws.table import TableContext, float_or_none, query, values
from ghingest.ports import DestinationStats, ForwardView, ReplaySelection, ReplayTarget


class AwsForwardLog:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def replay_targets(self, selection: ReplaySelection) -> Sequence[ReplayTarget]:
        return await self._db.run("forward_log.replay_targets", replay_targets, self._db, selection)

    async def stats(self) -> Sequence[DestinationStats]:
        return await self._db.run("forward_log.stats", self._stats)

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
        items = query(
            self._db,
            KeyConditionExpression="pk = :dests",
            ExpressionAttributeValues=values(dests=keys.DESTINATIONS),
            ConsistentRead=True,
        )
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
