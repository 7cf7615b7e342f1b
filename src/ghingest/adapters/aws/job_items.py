"""Forward jobs and their attempts as DynamoDB items, the transaction entries that move them, their notices, and
`jobs_of`, the read of a delivery's jobs that every forwarding module makes (docs/aws/dynamodb.md, "Items").

A job item carries what the forwarder, the dashboard and a replay selection need without reading its delivery: the
delivery's id, `seq`, event, action, repository and receipt time. It is created in one transaction with its guard
and its destination's counts (`counts_update`), and carries the sparse `UNDISPATCHED` marker until its notice is
on the forwards topic. An attempt is recorded in one transaction too: the job (`attempt_job_update`), the attempt
item and the destination's counts (`attempt_counts_update`).

SNS and SQS carry notices, never bodies: `{"job_id": N}` with the message attributes that each destination's
subscription filter policy matches (`schema.FORWARD_NOTICE_ATTRIBUTES`), so that a queue sees its own jobs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ghingest.adapters.aws import keys, schema
from ghingest.adapters.aws.items import string_attributes
from ghingest.adapters.aws.table import (
    Item,
    TableContext,
    batch_get,
    float_or_none,
    int_or_none,
    key,
    put_new,
    query,
    to_item,
    values,
)
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.processing import StoredDelivery
from ghingest.ports import AttemptResult, AttemptView, ForwardJob, ForwardView

STATUS_NAMES = {"#status": "status"}  # `status` is a reserved word in expressions
FINAL = frozenset({ForwardStatus.DELIVERED, ForwardStatus.DEAD, ForwardStatus.REPLAYED})  # never attempted again
_OUTCOMES = {ForwardStatus.DELIVERED: "delivered", ForwardStatus.RETRY: "retry"}  # anything else: "dead"


# --- jobs ------------------------------------------------------------------------------------------------------


def job_item(
    *,
    job_id: int,
    delivery_id: str,
    delivery_seq: int,
    received_at: float,
    destination: str,
    route: str | None,
    generation: int,
    replay: bool,
    now: float,
    event: str,
    action: str | None,
    repository: str | None,
) -> Item:
    """A new job: pending, due now, not dispatched yet."""
    return to_item(
        {
            **keys.job(job_id),
            "gsi1pk": keys.jobs_of(delivery_id),
            "gsi1sk": keys.n20(job_id),
            "gsi3pk": keys.UNDISPATCHED,
            "gsi3sk": f"{keys.t(now)}#{keys.n20(job_id)}",
            "job_id": job_id,
            "delivery_id": delivery_id,
            "delivery_seq": delivery_seq,
            "received_at": received_at,
            "destination": destination,
            "route": route,
            "generation": generation,
            "replay": replay,
            "status": ForwardStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "event": event,
            "action": action,
            "repository": repository,
        }
    )


def counts_update(table: str, destination: str, *, queued: int = 0, dead: int = 0) -> Item:
    """A transaction entry that moves a destination's queue depth and dead-letter count."""
    return {
        "Update": {
            "TableName": table,
            "Key": key(keys.destination_counts(destination)),
            "UpdateExpression": "ADD queued :queued, dead :dead",
            "ExpressionAttributeValues": values(queued=queued, dead=dead),
        }
    }


def guard_put(table: str, delivery_id: str, destination: str, job_id: int) -> Item:
    """The original-job guard of (delivery, destination): there is a generation 0 job, so none is created again."""
    guard = {**keys.job_guard(delivery_id, destination), "delivery_id": delivery_id, "destination": destination}
    return put_new(table, to_item({**guard, "job_id": job_id}))


def successor_update(table: str, latest: Mapping[str, Any], job_id: int) -> Item:
    """The latest job of (delivery, destination) gets its one successor (superseded too, when it is dead)."""
    expression, condition = "SET successor = :successor", "attribute_not_exists(successor)"
    plain: dict[str, Any] = {"successor": job_id}
    if latest["status"] == ForwardStatus.DEAD.value:
        expression += ", #status = :replayed REMOVE gsi2pk, gsi2sk"
        condition += " AND #status = :dead"
        plain |= {"replayed": ForwardStatus.REPLAYED.value, "dead": ForwardStatus.DEAD.value}
    return job_update(table, int(latest["job_id"]), expression, condition, plain)


def supersede_update(table: str, job: Mapping[str, Any]) -> Item:
    """A dead job that is not the latest of its (delivery, destination) is superseded by a replay too."""
    plain = {"replayed": ForwardStatus.REPLAYED.value, "dead": ForwardStatus.DEAD.value}
    return job_update(
        table, int(job["job_id"]), "SET #status = :replayed REMOVE gsi2pk, gsi2sk", "#status = :dead", plain
    )


def job_update(table: str, job_id: int, expression: str, condition: str, plain: Mapping[str, Any]) -> Item:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": key(keys.job(job_id)),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values(**plain),
    }
    if "#status" in expression or "#status" in condition:
        update["ExpressionAttributeNames"] = STATUS_NAMES
    return {"Update": update}


def job_ids_of(db: TableContext, delivery_id: str) -> list[int]:
    """The ids of a delivery's jobs, from its index partition (blocking)."""
    return [
        int(item["job_id"])
        for item in query(
            db,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :jobs",
            ExpressionAttributeValues=values(jobs=keys.jobs_of(delivery_id)),
            ProjectionExpression="job_id",
        )
    ]


def jobs_of(db: TableContext, delivery_id: str) -> list[dict[str, Any]]:
    """A delivery's jobs, oldest first (blocking): ids from its index partition, items read strongly consistent
    (the index may lag a write; what a job is now comes from its item)."""
    ids = job_ids_of(db, delivery_id)
    return sorted(batch_get(db, [keys.job(i) for i in ids]), key=lambda job: int(job["job_id"]))


# --- attempts --------------------------------------------------------------------------------------------------


def _error_of(r: AttemptResult) -> str | None:
    return r.error if r.error is not None else (None if r.status_code is None else f"HTTP {r.status_code}")


def attempt_item(r: AttemptResult, attempt_id: int, number: int, replay: bool) -> Item:
    return to_item(
        {
            **keys.attempt(r.job_id, number),
            "gsi3pk": keys.attempts_of(r.destination),
            "gsi3sk": keys.attempt_sort(r.started_at, attempt_id),
            "attempt_id": attempt_id,
            "job_id": r.job_id,
            "destination": r.destination,
            "number": number,
            "replay": replay,
            "started_at": r.started_at,
            "latency": r.latency,
            "status_code": r.status_code,
            "outcome": _OUTCOMES.get(r.next_status, "dead"),
            "error": r.error,
            "response_excerpt": r.response_excerpt,
        }
    )


def attempt_job_update(table: str, r: AttemptResult, attempts: int, token: str | None) -> Item:
    """The job after an attempt (as memory's `_record_attempt`), on the condition that it is still delivering with
    the attempts it had when claimed (and by this claim, with its `token`)."""
    delivered = r.next_status is ForwardStatus.DELIVERED
    dead = r.next_status is ForwardStatus.DEAD
    plain: dict[str, Any] = {
        "next": r.next_status.value,
        "number": attempts + 1,
        "started": r.started_at,
        "delivering": ForwardStatus.DELIVERING.value,
        "attempts": attempts,
    }
    sets = [
        "#status = :next",
        "attempts = :number",
        "first_attempt_at = if_not_exists(first_attempt_at, :started)",
        "last_attempt_at = :started",
    ]
    removes = ["claim_token", "claimed_from"]
    optional = {
        "last_status_code": r.status_code,
        "last_error": None if delivered else _error_of(r),
        "completed_at": r.started_at + r.latency if delivered or dead else None,
    }
    for name, wanted in optional.items():
        if wanted is None:
            removes.append(name)
        else:
            sets.append(f"{name} = :{name}")
            plain[name] = wanted
    if r.next_attempt_at is not None:
        sets.append("next_attempt_at = :next_at")
        plain["next_at"] = r.next_attempt_at
    if dead:
        sets += ["gsi2pk = :dead_key", "gsi2sk = :dead_sort"]
        plain |= {"dead_key": keys.DEAD, "dead_sort": keys.n20(r.job_id)}
    condition = "#status = :delivering AND attempts = :attempts"
    if token is not None:
        condition += " AND claim_token = :token"
        plain["token"] = token
    return {
        "Update": {
            "TableName": table,
            "Key": key(keys.job(r.job_id)),
            "UpdateExpression": f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": STATUS_NAMES,
            "ExpressionAttributeValues": values(**plain),
        }
    }


def attempt_counts_update(table: str, r: AttemptResult) -> Item:
    """The destination's counts after an attempt (attempts, successes, failures, queue depth, dead letters)."""
    delivered = r.next_status is ForwardStatus.DELIVERED
    dead = r.next_status is ForwardStatus.DEAD
    error = _error_of(r)
    plain: dict[str, Any] = {
        "one": 1,
        "delivered": int(delivered),
        "failed": int(not delivered),
        "queued": -1 if delivered or dead else 0,
        "dead": int(dead),
        "started": r.started_at,
    }
    sets = ["last_attempt_at = :started"]
    removes = []
    if delivered:
        sets.append("last_success_at = :started")
    else:
        sets.append("last_error_at = :started")
        if error is None:
            removes.append("last_error")
        else:
            sets.append("last_error = :error")
            plain["error"] = error
    expression = (
        f"ADD attempts :one, delivered :delivered, failed :failed, queued :queued, dead :dead SET {', '.join(sets)}"
    )
    return {
        "Update": {
            "TableName": table,
            "Key": key(keys.destination_counts(r.destination)),
            "UpdateExpression": expression + (f" REMOVE {', '.join(removes)}" if removes else ""),
            "ExpressionAttributeValues": values(**plain),
        }
    }


# --- what the ports hand out -----------------------------------------------------------------------------------


def forward_job(job: Mapping[str, Any], delivery: StoredDelivery) -> ForwardJob:
    """A claimed job item, with its delivery's headers and body."""
    return ForwardJob(
        id=int(job["job_id"]),
        delivery_seq=int(job["delivery_seq"]),
        delivery_id=str(job["delivery_id"]),
        destination=str(job["destination"]),
        route=job.get("route"),
        replay=bool(job["replay"]),
        attempts=int(job["attempts"]),
        received_at=float(job["received_at"]),
        first_attempt_at=float_or_none(job.get("first_attempt_at")),
        event=delivery.event,
        content_kind=delivery.content_kind,
        headers=dict(delivery.headers),
        body=delivery.body,
    )


def attempt_view(a: Mapping[str, Any]) -> AttemptView:
    return AttemptView(
        id=int(a["attempt_id"]),
        job_id=int(a["job_id"]),
        destination=str(a["destination"]),
        number=int(a["number"]),
        replay=bool(a["replay"]),
        started_at=float(a["started_at"]),
        latency=float(a["latency"]),
        status_code=int_or_none(a.get("status_code")),
        outcome=str(a["outcome"]),
        error=a.get("error"),
        response_excerpt=a.get("response_excerpt"),
    )


def forward_view(job: Mapping[str, Any], attempts: tuple[AttemptView, ...]) -> ForwardView:
    status = ForwardStatus(job["status"])
    return ForwardView(
        id=int(job["job_id"]),
        delivery_seq=int(job["delivery_seq"]),
        delivery_id=str(job["delivery_id"]),
        destination=str(job["destination"]),
        route=job.get("route"),
        generation=int(job["generation"]),
        replay=bool(job["replay"]),
        status=status,
        attempts=int(job["attempts"]),
        created_at=float(job["created_at"]),
        next_attempt_at=(
            float(job["next_attempt_at"]) if status in (ForwardStatus.PENDING, ForwardStatus.RETRY) else None
        ),
        last_attempt_at=float_or_none(job.get("last_attempt_at")),
        last_status_code=int_or_none(job.get("last_status_code")),
        last_error=job.get("last_error"),
        completed_at=float_or_none(job.get("completed_at")),
        event=job.get("event"),
        repository=job.get("repository"),
        attempt_log=attempts,
    )


# --- notices ---------------------------------------------------------------------------------------------------


def notice_body(job_id: int) -> str:
    return orjson.dumps({"job_id": job_id}).decode()


def notice_job_id(body: str) -> int | None:
    """The job id of a notice; None for a message that is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    job_id = document.get("job_id") if isinstance(document, dict) else None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id > 0 else None


def notice_attributes(job: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The message attributes of a job's notice (`schema.FORWARD_NOTICE_ATTRIBUTES`)."""
    return string_attributes(job, schema.FORWARD_NOTICE_ATTRIBUTES)
