"""The claim check: a body too large for its delivery item goes to the payload bucket first, and the item holds
its S3 key (docs/aws/dynamodb.md, "Bodies").

An item is at most 400 KB, headers and attributes included: a body of up to `INLINE_LIMIT` bytes stays in the item
(one read serves a claim), a larger one is put to `payloads/<delivery id>` before the item is written, so that an
item never points at an object that is not there. The put is conditional (`If-None-Match: *`): a duplicate of a
recorded delivery (another hook's copy, whose body may differ) never overwrites the body that was recorded. Without
a bucket, the inbox holds only what fits in an item, and says so in its capabilities (the receiver answers 413).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import TableContext
from ghingest.core.errors import PayloadTooLarge

log = structlog.get_logger("ghingest.aws.payloads")

INLINE_LIMIT = 256 * 1024  # bytes of body kept in the delivery item itself


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


def body_of(db: TableContext, attrs: Mapping[str, Any]) -> bytes:
    """A delivery item's body (blocking): inline, or fetched from the bucket. A body the bucket no longer has (its
    lifecycle rule expired it: `PayloadRetentionDays`) reads as empty, so that the delivery's record still shows;
    processing it again then fails with "no payload", which the delivery page says."""
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
