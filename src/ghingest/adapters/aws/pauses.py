"""Paused destinations and test deliveries on DynamoDB (docs/aws/dynamodb.md, pattern 22): one `PAUSED` item per
paused destination, one `PINGS` item per destination with its last test delivery.

A paused destination's jobs are *parked*: a notice of one that comes due (received by a claim or delivered to the
forwarder Lambda) gives its job the sparse `UNDISPATCHED` marker again and is finished with, and new jobs of it are
not dispatched (`AwsJobs.dispatch_now` skips them, the sweeper too) — so nothing of it circulates in SQS while it is
paused (no receive counts towards the queue's redrive). Resuming credits the time paused to the parked jobs'
`first_attempt_at` and publishes their notices (`parked`, then `AwsJobs.dispatch_now`).
"""

from __future__ import annotations

from typing import Any

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.job_items import STATUS_NAMES
from ghingest.adapters.aws.table import (
    TableContext,
    float_or_none,
    from_item,
    get,
    int_or_none,
    key,
    query,
    to_item,
    values,
)
from ghingest.core.forward_states import ForwardStatus
from ghingest.ports import DestinationPause, DestinationTest

_ACTIVE = {"pending": ForwardStatus.PENDING.value, "retry": ForwardStatus.RETRY.value,
           "delivering": ForwardStatus.DELIVERING.value}  # fmt: skip


def paused(db: TableContext) -> list[DestinationPause]:
    items = query(
        db,
        KeyConditionExpression="pk = :paused",
        ExpressionAttributeValues=values(paused=keys.PAUSED),
        ConsistentRead=True,
    )
    return [_pause_of(item) for item in items]


def paused_names(db: TableContext) -> frozenset[str]:
    return frozenset(p.destination for p in paused(db))


def pause(db: TableContext, destination: str, by: str) -> DestinationPause:
    """Pause `destination`, unless it is paused (then its pause stands); the pause in force."""
    item = {**keys.destination_pause(destination), "paused_by": by, "paused_at": db.clock.now()}
    try:
        db.clients.dynamodb.put_item(
            TableName=db.table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
        )
    except Exception as exc:
        if not is_error(exc, "ConditionalCheckFailedException"):
            raise
        found = get(db, keys.destination_pause(destination))
        if found is not None:
            return _pause_of(found)
        return pause(db, destination, by)  # resumed in between
    return _pause_of(item)


def unpause(db: TableContext, destination: str) -> tuple[DestinationPause | None, list[int]]:
    """End `destination`'s pause: the pause it was, and its parked jobs (their `first_attempt_at` moved later by
    the time paused), whose notices the caller publishes."""
    answer = db.clients.dynamodb.delete_item(
        TableName=db.table, Key=key(keys.destination_pause(destination)), ReturnValues="ALL_OLD"
    )
    if "Attributes" not in answer:
        return None, []
    ended = _pause_of(from_item(answer["Attributes"]))
    credit = max(0.0, db.clock.now() - ended.paused_at)
    parked = []
    for job in query(
        db,
        IndexName="gsi3",
        KeyConditionExpression="gsi3pk = :marker",
        FilterExpression="destination = :destination",
        ExpressionAttributeValues=values(marker=keys.UNDISPATCHED, destination=destination),
    ):
        parked.append(int(job["job_id"]))
        if job.get("first_attempt_at") is not None and credit:
            _credit(db, int(job["job_id"]), credit)
    return ended, parked


def park(db: TableContext, job: dict[str, Any], now: float) -> bool:
    """Give a due job of a paused destination its `UNDISPATCHED` marker again; False if it is not due."""
    try:
        db.clients.dynamodb.update_item(
            TableName=db.table,
            Key=key(keys.job(int(job["job_id"]))),
            UpdateExpression="SET gsi3pk = :marker, gsi3sk = :sort",
            ConditionExpression="#status IN (:pending, :retry, :delivering) AND next_attempt_at <= :now",
            ExpressionAttributeNames=STATUS_NAMES,
            ExpressionAttributeValues=values(
                marker=keys.UNDISPATCHED, sort=f"{keys.t(now)}#{keys.n20(int(job['job_id']))}", now=now, **_ACTIVE
            ),
        )
    except Exception as exc:
        if not is_error(exc, "ConditionalCheckFailedException"):
            raise
        return False
    return True


def _credit(db: TableContext, job_id: int, seconds: float) -> None:
    try:
        db.clients.dynamodb.update_item(
            TableName=db.table,
            Key=key(keys.job(job_id)),
            UpdateExpression="SET first_attempt_at = first_attempt_at + :credit",
            ConditionExpression="attribute_exists(first_attempt_at) AND #status IN (:pending, :retry, :delivering)",
            ExpressionAttributeNames=STATUS_NAMES,
            ExpressionAttributeValues=values(credit=seconds, **_ACTIVE),
        )
    except Exception as exc:
        if not is_error(exc, "ConditionalCheckFailedException"):
            raise


def record_test(db: TableContext, test: DestinationTest) -> None:
    item = {
        **keys.destination_ping(test.destination),
        "delivery_id": test.delivery_id,
        "sent_by": test.sent_by,
        "sent_at": test.sent_at,
        "latency": test.latency,
        "status_code": test.status_code,
        "error": test.error,
        "response_excerpt": test.response_excerpt,
    }
    db.clients.dynamodb.put_item(TableName=db.table, Item=to_item({k: v for k, v in item.items() if v is not None}))


def tests(db: TableContext) -> list[DestinationTest]:
    items = query(
        db,
        KeyConditionExpression="pk = :pings",
        ExpressionAttributeValues=values(pings=keys.PINGS),
        ConsistentRead=True,
    )
    return [
        DestinationTest(
            destination=str(i["sk"]),
            delivery_id=str(i["delivery_id"]),
            sent_by=str(i["sent_by"]),
            sent_at=float(i["sent_at"]),
            latency=float(i["latency"]),
            status_code=int_or_none(i.get("status_code")),
            error=i.get("error"),
            response_excerpt=i.get("response_excerpt"),
        )
        for i in items
    ]


def _pause_of(item: dict[str, Any]) -> DestinationPause:
    at = float_or_none(item.get("paused_at"))
    return DestinationPause(destination=str(item["sk"]), paused_by=str(item["paused_by"]), paused_at=at or 0.0)
