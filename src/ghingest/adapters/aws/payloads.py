"""Bodies: each delivery's body is in an item of its own (`DLV#<id>` / `BODY`, in no index, with a TTL when a
retention is configured), and a body too large for it goes to the payload bucket first, the item holding its S3
key: the claim check (docs/aws/dynamodb.md, "Bodies").

An item is at most 400 KB: a body of up to `INLINE_LIMIT` bytes stays in the body item (read with the delivery item
in one request), a larger one is put to `payloads/<delivery id>` before the items are written, so that an item
never points at an object that is not there. The put is conditional (`If-None-Match: *`): a duplicate of a
recorded delivery (another hook's copy, whose body may differ) never overwrites the body that was recorded. Without
a bucket, the inbox holds only what fits in an item, and says so in its capabilities (the receiver answers 413).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import TableContext, batch_get
from ghingest.core.errors import PayloadTooLarge

log = structlog.get_logger("ghingest.aws.payloads")

INLINE_LIMIT = 256 * 1024  # bytes of body kept in the body item itself
DAY = 86400


def max_payload_bytes(db: TableContext) -> int | None:
    """The largest body the inbox holds: any (the receiver's cap) with a bucket, else what fits in an item."""
    return None if db.options.payload_bucket else INLINE_LIMIT


def put_body(db: TableContext, delivery_id: str, body: bytes) -> str | None:
    """Put a large body to the bucket (blocking); its S3 key, or None when the body stays in the item."""
    if len(body) <= INLINE_LIMIT:
        return None
    bucket = db.options.payload_bucket
    if not bucket:
        raise PayloadTooLarge(f"body exceeds the {INLINE_LIMIT} bytes a DynamoDB item holds (no payload bucket)")
    object_key = keys.payload(delivery_id)
    try:
        db.clients.s3.put_object(Bucket=bucket, Key=object_key, Body=body, IfNoneMatch="*")
    except Exception as exc:
        if not is_error(exc, "PreconditionFailed", "ConditionalRequestConflict"):
            raise
        # Put already: a duplicate (the item decides), or an append that failed after its put.
    return object_key


def expires_at(db: TableContext, received_at: float) -> int | None:
    """When a body received at `received_at` expires (the body item's TTL, epoch seconds), or None: kept."""
    days = db.options.payload_retention_days
    return math.ceil(received_at + days * DAY) if days > 0 else None


def body_of(db: TableContext, attrs: Mapping[str, Any] | None) -> bytes:
    """A body item's body (blocking): inline, or fetched from the bucket. A body item that is gone (its TTL expired
    it) or a body the bucket no longer has (its lifecycle rule expired it: `PayloadRetentionDays`) reads as empty,
    so that the delivery's record still shows; processing it again then fails with "no payload", which the
    delivery page says."""
    if attrs is None:
        return b""
    object_key = attrs.get("body_key")
    if object_key is None:
        return bytes(attrs.get("body", b""))
    try:
        response = db.clients.s3.get_object(Bucket=db.options.payload_bucket, Key=object_key)
    except Exception as exc:
        if not is_error(exc, "NoSuchKey"):
            raise
        log.warning("payload.expired", delivery_id=attrs.get("delivery_id"))
        return b""
    return bytes(response["Body"].read())


def with_bodies(db: TableContext, delivery_ids: Iterable[str]) -> dict[str, tuple[dict[str, Any], bytes]]:
    """The delivery items of `delivery_ids` that exist, by id, each with its body (blocking): both items of each in
    consistent `BatchGetItem`s (at most 100 keys each: 50 deliveries), then the large bodies from the bucket."""
    ids = list(dict.fromkeys(delivery_ids))
    found = batch_get(db, [k for i in ids for k in (keys.delivery(i), keys.body(i))])
    deliveries = {str(a["delivery_id"]): a for a in found if a["sk"] == keys.DELIVERY_SK}
    bodies = {str(a["delivery_id"]): a for a in found if a["sk"] == keys.BODY_SK}
    return {i: (deliveries[i], body_of(db, bodies.get(i))) for i in ids if i in deliveries}
