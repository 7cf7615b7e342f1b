"""Deliveries, events, releases and sightings as DynamoDB items (docs/aws/dynamodb.md, "Items"); forward jobs and
attempts are `job_items`'.

Plain attributes (`table.to_item` / `from_item`), not one opaque blob. Release content and changes keep the SQL
stores' serialization (`adapters.sql.outcomes` / `queries`): the content as the same JSON document and the record's
columns as attributes, decoded by the same functions, so that there is one format of a release, not one per
backend. Item keys come from `keys` only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ghingest.adapters.aws import keys, schema
from ghingest.adapters.aws.schema import DELIVERY_NOTICE_ATTRIBUTES
from ghingest.adapters.aws.table import Item, to_item
from ghingest.adapters.sql import outcomes as sql
from ghingest.adapters.sql import queries
from ghingest.core.delivery import ContentKind
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ChangeOrder, HistoryEntry, ReleaseChange, ReleaseRecord, sort_at
from ghingest.core.sources import WEBHOOK_SOURCE
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Sighting

# --- deliveries -------------------------------------------------------------------------------------------------


def body_digest(body: bytes) -> str:
    """What a sighting's body is compared with: the recorded body may be in S3, its digest is in the item."""
    return hashlib.sha256(body).hexdigest()


def unpublished_sort(received_at: float, delivery_id: str) -> str:
    return f"{keys.t(received_at)}#{delivery_id}"


def delivery_item(d: StoredDelivery, *, action: str | None, repository: str | None) -> Item:
    """A delivery as received, without its body (`body_item`): status received, the UNPUBLISHED marker (gsi3)
    until an outcome is recorded, the body's digest and size. `action` and `repository` are kept for the notice's
    attributes, so that publishing it again never reads the body."""
    return to_item(
        {
            **keys.delivery(d.delivery_id),
            "gsi1pk": keys.deliveries_shard(d.seq),
            "gsi1sk": keys.n20(d.seq),
            "gsi3pk": keys.UNPUBLISHED,
            "gsi3sk": unpublished_sort(d.received_at, d.delivery_id),
            "seq": d.seq,
            "delivery_id": d.delivery_id,
            "event": d.event,
            "hook_id": d.hook_id,
            "content_kind": d.content_kind.value,
            "headers": dict(d.headers),
            "body_sha256": body_digest(d.body),
            "size": len(d.body),
            "secret_index": d.secret_index,
            "received_at": d.received_at,
            "action": action,
            "repository": repository,
            "status": DeliveryStatus.RECEIVED.value,
            "attempts": 0,
        }
    )


def body_item(d: StoredDelivery, *, body_key: str | None, expires_at: int | None) -> Item:
    """A delivery's body, in an item of its own and in no index (no index key attribute): the body inline, or the
    S3 key it was put under; `expires_at` (the table's TTL attribute) when a retention is configured."""
    return to_item(
        {
            **keys.body(d.delivery_id),
            "delivery_id": d.delivery_id,
            "body": None if body_key is not None else d.body,
            "body_key": body_key,
            schema.TTL_ATTRIBUTE: expires_at,
        }
    )


def stored_delivery(attrs: Mapping[str, Any], body: bytes, *, attempts: int = 0) -> StoredDelivery:
    """A delivery item (plain values) as the inbox hands it out, with its body (`payloads.body_of` its body item)."""
    return StoredDelivery(
        seq=int(attrs["seq"]),
        delivery_id=str(attrs["delivery_id"]),
        event=str(attrs["event"]),
        hook_id=attrs.get("hook_id"),
        content_kind=ContentKind(attrs["content_kind"]),
        headers=dict(attrs.get("headers") or {}),
        body=body,
        received_at=float(attrs["received_at"]),
        secret_index=int(attrs["secret_index"]),
        attempts=attempts,
    )


def string_attributes(attrs: Mapping[str, Any], names: Iterable[str]) -> dict[str, dict[str, str]]:
    """SNS / SQS message attributes: `names` of `attrs` as strings; one that is unknown or empty is left out (SNS
    refuses an empty string value)."""
    return {name: {"DataType": "String", "StringValue": str(attrs[name])} for name in names if attrs.get(name)}


def notice_attributes(attrs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The message attributes of a delivery's notice (`schema.DELIVERY_NOTICE_ATTRIBUTES`)."""
    return string_attributes(attrs, DELIVERY_NOTICE_ATTRIBUTES)


def notice(delivery_id: str, seq: int) -> str:
    return orjson.dumps({"delivery_id": delivery_id, "seq": seq}).decode("utf-8")


# --- events -----------------------------------------------------------------------------------------------------

_EVENT_FIELDS = (
    "delivery_id", "event", "action", "repository", "organization", "sender", "installation_id", "hook_id",
    "shape_warning",
)  # fmt: skip


def event_item(
    d: StoredDelivery,
    record: EventRecord,
    status: DeliveryStatus,
    error: str | None,
    now: float,
) -> Item:
    """What processing made of a delivery, in the three event lists (all, by type, by repository)."""
    return to_item(
        {
            **keys.event(d.delivery_id),
            "gsi1pk": keys.events_shard(d.seq),
            "gsi1sk": keys.n20(d.seq),
            "gsi2pk": keys.events_of_type(record.event),
            "gsi2sk": keys.n20(d.seq),
            "gsi3pk": None if record.repository is None else keys.events_of_repository(record.repository),
            "gsi3sk": None if record.repository is None else keys.n20(d.seq),
            **{name: getattr(record, name) for name in _EVENT_FIELDS},
            "seq": d.seq,
            "status": status.value,
            "error": error,
            "received_at": d.received_at,
            "processed_at": now,
        }
    )


def event_record(attrs: Mapping[str, Any]) -> EventRecord:
    fields: dict[str, Any] = {name: attrs.get(name) for name in _EVENT_FIELDS}
    return EventRecord(**fields)


# --- releases ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRelease:
    record: ReleaseRecord  # with its history
    first_seen_at: float
    updated_at: float
    version: int  # the optimistic lock: a write is conditioned on the version it read
    sources: frozenset[str]  # of its history entries (`sources`, so that a page need not decode the history)


def release_item(record: ReleaseRecord, *, first_seen_at: float, updated_at: float, version: int) -> Item:
    """A folded release in the releases lists (all, by repository), sorted by its published-or-created time."""
    columns = dict(zip(sql.RELEASE_COLUMNS, sql.release_values(record, first_seen_at=first_seen_at), strict=True))
    at = sort_at(record.content)
    repository = record.content.repository
    history = [[e.delivery_id, e.action, e.order.timestamp, e.order.seq, e.received_at] for e in record.history]
    sources = sorted({e.source for e in record.history})
    return to_item(
        {
            **keys.release(record.release_id),
            "gsi1pk": keys.RELEASES,
            "gsi1sk": keys.release_sort(at, record.release_id),
            "gsi2pk": None if repository is None else keys.releases_of(repository),
            "gsi2sk": None if repository is None else keys.release_sort(at, record.release_id),
            **columns,
            "sort_at": at,
            "history": orjson.dumps(history).decode("utf-8"),
            "sources": sources,
            "updated_at": updated_at,
            "version": version,
        }
    )


def stored_release(attrs: Mapping[str, Any], *, with_history: bool = True) -> StoredRelease:
    record = sql.record_of(tuple(attrs.get(name) for name in sql.RELEASE_COLUMNS))
    if with_history:
        entries = orjson.loads(attrs["history"])
        history = tuple(HistoryEntry(did, action, ChangeOrder(ts, seq), at) for did, action, ts, seq, at in entries)
        record = ReleaseRecord(record.release_id, record.state, record.content, record.content_order, history)
    # An item written before releases were polled has no `sources`: its history came by webhook.
    sources = frozenset(str(source) for source in attrs.get("sources") or (WEBHOOK_SOURCE,))
    first_seen_at, updated_at = float(attrs["first_seen_at"]), float(attrs["updated_at"])
    return StoredRelease(record, first_seen_at, updated_at, int(attrs["version"]), sources)


def change_item(change: ReleaseChange) -> Item:
    """A release change, one per delivery: what a rebuild folds again (the SQL stores' change row)."""
    row = dict(zip(sql.CHANGE_COLUMNS, sql.change_row(change), strict=True))
    return to_item({**keys.release_change(change.release_id, change.delivery_id), **row})


def release_change(attrs: Mapping[str, Any]) -> ReleaseChange:
    return queries.release_change_of({**attrs, "received_at": float(attrs["received_at"])})


# --- sightings --------------------------------------------------------------------------------------------------


def sighting(attrs: Mapping[str, Any]) -> Sighting:
    same = attrs.get("same_body")
    return Sighting(
        hook_id=str(attrs["sk"])[len(keys.SIGHTING_PREFIX) :] or None,
        first_at=float(attrs["first_at"]),
        last_at=float(attrs["last_at"]),
        count=int(attrs["count"]),
        same_body=None if same is None else bool(same),
        secret_index=int(attrs["secret_index"]),
    )


# A sighting's hook id in the `HOOKS` item's string set, `#` first: a set holds no empty string (`''`: a request
# that named no hook).
_HOOK_MARK = "#"


def sighted_hook(hook_id: str | None) -> str:
    return _HOOK_MARK + (hook_id or "")


def sighted_hooks(attrs: Mapping[str, Any]) -> set[str]:
    """The hook ids of a `HOOKS` item (`keys.hooks_seen`)."""
    return {str(marked).removeprefix(_HOOK_MARK) for marked in attrs.get("hooks", ())}
