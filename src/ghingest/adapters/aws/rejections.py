"""The rejected-requests log on DynamoDB: one item per bucket in the partition `REJS`, sorted by
`<t minute>#<reason>#<client>#<event>#<hook id>` (`keys.rejection_sort`: the list's order), with a TTL at the end of
the retention.

- A bucket is recorded by one `UpdateItem` (`ADD count`, the first time, last time and delivery id set if new,
  the old item returned); when the item was there already, a second, conditional `UpdateItem` widens its times to
  the merged bucket's (`core.rejections.merge`; a concurrent writer that widened them further wins). The receiver's
  aggregation keeps these writes to at most a few hundred a minute per process, whatever arrives.
- The bound: TTL deletes expired buckets within days, so each batch also deletes (at most a page of) buckets past
  the retention and the reads skip them; the row cap is kept with a counter item (`COUNTER`/`rejections`, the
  items created since it was last made exact): past the cap, the partition's keys are read oldest first and the
  excess deleted (`BatchWriteItem`), and the counter set to what is left. Every list, count and summary reads the
  one partition (at most `MAX_ROWS` small items), newest first, filtered here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from typing import Any

from ghingest.adapters.aws import keys, schema
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import COUNTER_VALUE, TableContext, from_item, key, query, to_item, values
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.rejections import Key, Reason, RejectionBucket, merge, minute_of
from ghingest.ports.rejections import (
    MAX_ROWS,
    RETENTION_SECONDS,
    RejectionQuery,
    RejectionSummary,
    first_minute,
    matches,
    rejection_after,
    rejection_cursor,
    summarize,
)

_COUNTER = "rejections"
_BATCH_WRITE = 25
_EXPIRED_PAGE = 100  # buckets past the retention deleted per batch at most (TTL deletes the rest)
_NAMES = {
    "#count": "count",
    "#first": "first_at",
    "#last": "last_at",
    "#did": "delivery_id",
    "#agg": "aggregated",
    "#minute": "minute",
    "#reason": "reason",
    "#client": "client",
    "#event": "event",
    "#hook": "hook_id",
    "#ttl": schema.TTL_ATTRIBUTE,
}


class AwsRejectionLog:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def record(
        self,
        buckets: Sequence[RejectionBucket],
        *,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        await self._db.run("rejections.record", self._record, buckets, keep_rows, keep_seconds)

    async def page(self, query: RejectionQuery, *, cursor: str | None = None, limit: int = 50) -> Page[RejectionBucket]:
        after = rejection_after(cursor) if cursor else None
        size = page_size(limit)
        return await self._db.run("rejections.list", self._list, query, after, size)

    async def count_since(self, since: float) -> int:
        return sum(b.count for b in await self._db.run("rejections.count_since", self._since, since))

    async def summary(self, *, since: float) -> RejectionSummary:
        return summarize(await self._db.run("rejections.summary", self._since, since))

    # --- blocking parts (on a thread) -----------------------------------------------------------------------------

    def _record(self, buckets: Sequence[RejectionBucket], keep_rows: int, keep_seconds: float) -> None:
        created = sum(self._add(b, keep_seconds) for b in buckets)
        oldest = keys.t(minute_of(self._db.clock.now() - keep_seconds))
        old = self._items(upper=oldest, newest_first=False)  # `<=`: no sort key is `oldest` itself
        expired = [(item["pk"], item["sk"]) for item in itertools.islice(old, _EXPIRED_PAGE)]
        self._delete(expired)
        if created > len(expired) and self._count_created(created - len(expired)) > keep_rows:
            self._trim(keep_rows)

    def _add(self, b: RejectionBucket, keep_seconds: float) -> bool:
        """Add `b` to its item; whether the item is new."""
        dynamodb = self._db.clients.dynamodb
        response = dynamodb.update_item(
            TableName=self._db.table,
            Key=key(keys.rejection(*_key_text(b.key))),
            UpdateExpression=(
                "ADD #count :count SET #first = if_not_exists(#first, :first), #last = if_not_exists(#last, :last),"
                " #did = if_not_exists(#did, :did), #agg = :agg, #minute = :minute, #reason = :reason,"
                " #client = :client, #event = :event, #hook = :hook, #ttl = :ttl"
            ),
            ExpressionAttributeNames=_NAMES,
            ExpressionAttributeValues=values(
                count=b.count,
                first=b.first_at,
                last=b.last_at,
                did=b.delivery_id,
                agg=b.aggregated,
                minute=b.minute,
                reason=b.reason.value,
                client=b.client,
                event=b.event,
                hook=b.hook_id,
                ttl=math.ceil(b.minute + keep_seconds),
            ),
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes")
        if not old:
            return True
        stored = _bucket(from_item(old))
        merged = merge(stored, b)
        if (merged.first_at, merged.last_at, merged.delivery_id) != (
            stored.first_at,
            stored.last_at,
            stored.delivery_id,
        ):
            try:
                dynamodb.update_item(
                    TableName=self._db.table,
                    Key=key(keys.rejection(*_key_text(b.key))),
                    UpdateExpression="SET #first = :first, #last = :last, #did = :did",
                    ConditionExpression="#first >= :first AND #last <= :last",
                    ExpressionAttributeNames={"#first": "first_at", "#last": "last_at", "#did": "delivery_id"},
                    ExpressionAttributeValues=values(
                        first=merged.first_at, last=merged.last_at, did=merged.delivery_id
                    ),
                )
            except Exception as exc:
                if not is_error(exc, "ConditionalCheckFailedException"):
                    raise  # else another writer widened them further meanwhile
        return False

    def _count_created(self, created: int) -> int:
        """Add `created` to the counter of items (an estimate from above: TTL deletes items unannounced); its new
        value."""
        response = self._db.clients.dynamodb.update_item(
            TableName=self._db.table,
            Key=key(keys.counter(_COUNTER)),
            UpdateExpression="ADD #value :n",
            ExpressionAttributeNames={"#value": COUNTER_VALUE},
            ExpressionAttributeValues=values(n=created),
            ReturnValues="UPDATED_NEW",
        )
        return int(from_item(response["Attributes"])[COUNTER_VALUE])

    def _trim(self, keep_rows: int) -> None:
        """Delete the oldest items beyond `keep_rows`; make the counter exact."""
        found = [
            (item["pk"], item["sk"])
            for item in query(
                self._db,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=values(pk=keys.REJECTIONS),
                ProjectionExpression="pk, sk",
                ScanIndexForward=False,
            )
        ]
        self._delete(found[keep_rows:])
        self._db.clients.dynamodb.put_item(
            TableName=self._db.table,
            Item=to_item({**keys.counter(_COUNTER), COUNTER_VALUE: min(len(found), keep_rows)}),
        )

    def _delete(self, item_keys: Sequence[tuple[str, str]]) -> None:
        for start in range(0, len(item_keys), _BATCH_WRITE):
            chunk = item_keys[start : start + _BATCH_WRITE]
            request: dict[str, Any] = {
                self._db.table: [{"DeleteRequest": {"Key": key({"pk": pk, "sk": sk})}} for pk, sk in chunk]
            }
            while request:
                response = self._db.clients.dynamodb.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}

    def _items(
        self, *, lower: str | None = None, upper: str | None = None, newest_first: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The partition's items with `lower <= sk <= upper` (either open): the callers drop an item at `upper`."""
        bound: dict[str, Any] = {"pk": keys.REJECTIONS, "lower": lower, "upper": upper}
        condition = {
            (True, True): "pk = :pk AND sk BETWEEN :lower AND :upper",
            (True, False): "pk = :pk AND sk >= :lower",
            (False, True): "pk = :pk AND sk <= :upper",
            (False, False): "pk = :pk",
        }[(lower is not None, upper is not None)]
        return query(
            self._db,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values(**{k: v for k, v in bound.items() if v is not None}),
            ScanIndexForward=not newest_first,
        )

    def _list(self, wanted: RejectionQuery, after: Key | None, size: int) -> Page[RejectionBucket]:
        since = first_minute(wanted.since)
        items = self._items(
            lower=None if since is None else keys.t(since),
            upper=None if after is None else keys.rejection_sort(*_key_text(after)),
        )
        found = (b for b in map(_bucket, items) if matches(b, wanted) and (after is None or b.key < after))
        return page_of(list(itertools.islice(found, size + 1)), size, rejection_cursor)

    def _since(self, since: float) -> list[RejectionBucket]:
        return [_bucket(item) for item in self._items(lower=keys.t(minute_of(since)))]


def _key_text(k: Key) -> tuple[int, str, str, str, str]:
    return (k[0], k[1].value, k[2], k[3], k[4])


def _bucket(item: dict[str, Any]) -> RejectionBucket:
    return RejectionBucket(
        minute=int(item["minute"]),
        reason=Reason(item["reason"]),
        client=str(item.get("client", "")),
        event=str(item.get("event", "")),
        hook_id=str(item.get("hook_id", "")),
        delivery_id=str(item.get("delivery_id", "")),
        count=int(item["count"]),
        first_at=float(item["first_at"]),
        last_at=float(item["last_at"]),
        aggregated=bool(item.get("aggregated", False)),
    )
