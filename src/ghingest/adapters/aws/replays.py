"""Replays on DynamoDB (blocking, on the adapters' threads): which (delivery, destination) pairs a selection
reaches (`replay_targets`, the forward log's), and the replay jobs made for them (`create_replays`, the forward
queue's `enqueue_replays`), each as memory's.

A replay job is one generation above the latest job of its (delivery, destination) and supersedes the dead ones,
in one transaction: the latest job gets the new one as its successor on the condition that it has none, and a
first job puts the original-job guard, so that generations never repeat and a concurrent replay reads again. The
transaction puts a `forward` change of the delivery on the change feed (`feed.transact_with_changes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import condition_failed
from ghingest.adapters.aws.feed import transact_with_changes
from ghingest.adapters.aws.job_items import (
    STATUS_NAMES,
    counts_update,
    guard_put,
    job_item,
    jobs_of,
    successor_update,
    supersede_update,
)
from ghingest.adapters.aws.table import TableContext, batch_get, put_new, query, reserve, scan, values
from ghingest.core.errors import StoreUnavailable
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import glob_matches
from ghingest.core.states import DeliveryStatus
from ghingest.ports import ReplaySelection, ReplayTarget, TargetDelivery

_TRIES = 4  # a replay that meets a concurrent one reads its jobs again, this many times at most


# --- creating replays ------------------------------------------------------------------------------------------


def create_replays(db: TableContext, targets: list[ReplayTarget]) -> list[int]:
    """The replay jobs of `targets` (those whose delivery still exists): their ids, to dispatch."""
    now = db.clock.now()
    created = []
    for (seq, destination, route), job_id in zip(targets, reserve(db, "job", len(targets)), strict=True):
        for _ in range(_TRIES):
            done = _replay(db, seq, destination, route, job_id, now)
            if done is not None:
                if done:
                    created.append(job_id)
                break
        else:
            raise StoreUnavailable("forwards.enqueue_replays: concurrent replays of one delivery kept conflicting")
    return created


def _replay(db: TableContext, seq: int, destination: str, route: str | None, job_id: int, now: float) -> bool | None:
    """One replay job: True when created, False when the delivery is gone, None on a conflict with a concurrent
    replay or recording (the jobs are read again)."""
    delivery = _delivery_of_seq(db, seq)
    if delivery is None:
        return False
    delivery_id = str(delivery["delivery_id"])
    previous = [j for j in jobs_of(db, delivery_id) if j["destination"] == destination]
    latest = max(previous, key=lambda j: int(j["generation"]), default=None)
    dead = [j for j in previous if j["status"] == ForwardStatus.DEAD.value]
    table = db.table
    item = job_item(
        job_id=job_id,
        delivery_id=delivery_id,
        delivery_seq=seq,
        received_at=float(delivery["received_at"]),
        destination=destination,
        route=route,
        generation=0 if latest is None else int(latest["generation"]) + 1,
        replay=True,
        now=now,
        event=str(delivery["event"]),
        action=delivery.get("action"),
        repository=delivery.get("repository"),
    )
    entries = [put_new(table, item), counts_update(table, destination, queued=1, dead=-len(dead))]
    if latest is None:
        entries.append(guard_put(table, delivery_id, destination, job_id))
    else:
        entries.append(successor_update(table, latest, job_id))
    entries += [supersede_update(table, j) for j in dead if j is not latest]
    try:
        transact_with_changes(db, entries, [("forward", delivery_id)])
    except Exception as exc:
        if condition_failed(exc):
            return None
        raise
    return True


def _delivery_of_seq(db: TableContext, seq: int) -> dict[str, Any] | None:
    """A delivery item by its `seq` (a ReplayTarget's key), from its shard of the deliveries' index partition."""
    found = query(
        db,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :shard AND gsi1sk = :seq",
        ExpressionAttributeValues=values(shard=keys.deliveries_shard(seq), seq=keys.n20(seq)),
    )
    return next(found, None)


def target_deliveries(db: TableContext, seqs: Sequence[int]) -> list[TargetDelivery]:
    """A dry run's first few targets: one index query per key (`_delivery_of_seq`)."""
    found = []
    for seq in seqs:
        if (d := _delivery_of_seq(db, seq)) is not None:
            repository = d.get("repository")
            found.append(
                TargetDelivery(seq, str(d["delivery_id"]), str(d["event"]), None if repository is None else
                               str(repository), float(d["received_at"]))
            )  # fmt: skip
    return found


# --- selecting what to replay ----------------------------------------------------------------------------------


def replay_targets(db: TableContext, s: ReplaySelection) -> list[ReplayTarget]:
    """As memory's `_replay_targets`. Where the jobs come from: the jobs named (`job_ids`), the delivery's own
    (`delivery_id`), the dead letters' deliveries (`dead_only`); any other selection reads every job — a Scan (with
    a filter on the job items), the one broad read of this adapter, as an operator's replay is rare."""

    def job_matches(job: Mapping[str, Any]) -> bool:
        return (
            (s.destination is None or job["destination"] == s.destination)
            and (not s.dead_only or job["status"] == ForwardStatus.DEAD.value)
            and (not s.job_ids or int(job["job_id"]) in s.job_ids)
        )

    def delivery_matches(d: Mapping[str, Any]) -> bool:
        repository = d.get("repository")
        return (
            (s.delivery_id is None or d["delivery_id"] == s.delivery_id)
            and (s.event is None or d["event"] == s.event)
            and (s.repository is None or (repository is not None and glob_matches(str(repository), s.repository)))
            and (s.since is None or float(d["received_at"]) >= s.since)
            and (s.until is None or float(d["received_at"]) < s.until)
        )

    narrowed = s.destination is not None or s.dead_only or bool(s.job_ids)
    if s.to is None:  # each delivery's latest job per destination
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for job in _candidate_jobs(db, s):
            pair = (str(job["delivery_id"]), str(job["destination"]))
            if pair not in latest or int(job["generation"]) > int(latest[pair]["generation"]):
                latest[pair] = job
        chosen = [
            (int(j["delivery_seq"]), str(j["destination"]), j.get("route"))
            for j in latest.values()
            if job_matches(j) and delivery_matches(j)
        ]
        return sorted(chosen, key=lambda t: (t[0], t[1]))
    if narrowed or s.delivery_id is not None:
        jobs = _by_delivery(_candidate_jobs(db, s))
        wanted = [d for d, js in jobs.items() if any(map(job_matches, js))] if narrowed else [str(s.delivery_id)]
        deliveries = batch_get(db, [keys.delivery(d) for d in wanted])
    else:
        deliveries = _processed_deliveries(db)
        jobs = _by_delivery(_all_jobs(db))
    targets: list[ReplayTarget] = []
    for d in sorted(deliveries, key=lambda d: int(d["seq"])):
        if d.get("status") != DeliveryStatus.PROCESSED.value or not delivery_matches(d):
            continue
        previous = [j for j in jobs.get(str(d["delivery_id"]), ()) if j["destination"] == s.to]
        route = max(previous, key=lambda j: int(j["generation"])).get("route") if previous else None
        targets.append((int(d["seq"]), s.to, route))
    return targets


def _candidate_jobs(db: TableContext, s: ReplaySelection) -> list[dict[str, Any]]:
    """Every job of each delivery the selection may reach (all of them: a replay follows the latest per destination)."""
    if s.delivery_id is not None:
        return jobs_of(db, s.delivery_id)
    if s.job_ids:
        named = batch_get(db, [keys.job(i) for i in s.job_ids])
    elif s.dead_only:
        named = list(
            query(
                db,
                IndexName="gsi2",
                KeyConditionExpression="gsi2pk = :dead",
                ExpressionAttributeValues=values(dead=keys.DEAD),
            )
        )
    else:
        return _all_jobs(db)
    return [
        job for delivery_id in dict.fromkeys(str(j["delivery_id"]) for j in named) for job in jobs_of(db, delivery_id)
    ]


def _all_jobs(db: TableContext) -> list[dict[str, Any]]:
    return list(
        scan(
            db,
            FilterExpression="begins_with(pk, :job) AND sk = :item",
            ExpressionAttributeValues=values(job="JOB#", item=keys.JOB_SK),
            ConsistentRead=True,
        )
    )


def _processed_deliveries(db: TableContext) -> list[dict[str, Any]]:
    """Every processed delivery item: one query per write shard of the deliveries' index partition."""
    found: list[dict[str, Any]] = []
    for shard in range(keys.SHARDS):
        found += query(
            db,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :shard",
            FilterExpression="#status = :processed",
            ExpressionAttributeNames=STATUS_NAMES,
            ExpressionAttributeValues=values(
                shard=keys.deliveries_shard(shard), processed=DeliveryStatus.PROCESSED.value
            ),
        )
    return found


def _by_delivery(jobs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        grouped.setdefault(str(job["delivery_id"]), []).append(job)
    return grouped
