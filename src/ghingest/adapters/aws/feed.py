"""The change feed on DynamoDB: `FEED` entries in position order, and the head every `record_outcomes`
transaction moves on the condition that it is where it read it (`store.py`): positions commit in order, so a
reader following `sk > position` never skips a change that commits late.

A cursor is `<epoch>.<position>`: after the change at `position` of the table whose `META` item holds `epoch`
(random, written once: a cursor of another table, or of this table made again, names another epoch). A cursor
past the head, or one whose next entries have expired (TTL, 7 days), is `InvalidCursor`: the reader starts again
from `latest()`, as after a restart of the other backends. `wait_for_change` polls the head.

Writers put their entries with `feed_writes` in their own transaction: the store plans them with its outcomes;
the forward queue's transactions (an attempt, a release, a replay) go through `transact_with_changes`, which reads
the head again and writes again when only the head moved.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator, Sequence

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import Item, TableContext, from_item, get, put_new, to_item, values
from ghingest.core.errors import StoreUnavailable
from ghingest.core.int64 import parse_int64
from ghingest.core.pagination import InvalidCursor
from ghingest.ports import Change

POLL_INTERVAL = 0.2  # seconds between reads of the head while waiting for a change
RETENTION = 7 * 24 * 3600  # seconds a feed entry is kept (its TTL)
_LAST = "9" * 20  # the greatest `keys.n20` (entries sort before the head's "HEAD")
_TRIES = 8  # writes of one transaction while other writers keep moving the head
_PAUSE = 0.02  # seconds: the first retry's mean pause (doubling)
_MOVED = ("ConditionalCheckFailed", "TransactionConflict")


def ensure_epoch(db: TableContext) -> str:
    """The table's epoch (blocking), written with a random value by whoever reads it first."""
    meta = get(db, keys.META)
    if meta is None:
        try:
            db.clients.dynamodb.put_item(
                TableName=db.table,
                Item=to_item({**keys.META, "epoch": uuid.uuid4().hex[:12]}),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if not is_error(exc, "ConditionalCheckFailedException"):
                raise
        meta = get(db, keys.META)
        assert meta is not None  # put now, by this call or a concurrent one
    return str(meta["epoch"])


def head_position(db: TableContext) -> int:
    """The position of the newest committed change (blocking); 0 before the first."""
    return read_head(db) or 0


def read_head(db: TableContext) -> int | None:
    """The head's position (blocking, strongly consistent); None when no change was ever recorded."""
    head = get(db, keys.FEED_HEAD)
    return None if head is None else int(head["position"])


def feed_writes(table: str, head: int | None, feed: Sequence[tuple[str, str]], now: float) -> Iterator[Item]:
    """Transaction entries: the (kind, ref) changes of `feed` after the head read (`read_head`), and the head moved
    past them on the condition that it is unmoved (the last entry). Nothing for no change."""
    if not feed:
        return
    start = head or 0
    expires_at = int(now) + RETENTION
    for offset, (kind, ref) in enumerate(feed, start=1):
        entry = {**keys.feed_entry(start + offset), "kind": kind, "ref": ref, "at": now, "expires_at": expires_at}
        yield {"Put": {"TableName": table, "Item": to_item(entry)}}
    moved = to_item({**keys.FEED_HEAD, "position": start + len(feed)})
    if head is None:
        yield put_new(table, moved)
    else:
        condition = {"ConditionExpression": "#position = :head", "ExpressionAttributeValues": values(head=head)}
        names = {"ExpressionAttributeNames": {"#position": "position"}}
        yield {"Put": {"TableName": table, "Item": moved, **condition, **names}}


def transact_with_changes(db: TableContext, entries: Sequence[Item], feed: Sequence[tuple[str, str]]) -> None:
    """`TransactWriteItems` of `entries` and the changes of `feed` (blocking). When only the head moved (another
    writer appended first), the head is read again and the transaction written again, a bounded number of times
    with a jittered pause; a cancellation for any other reason (a condition of `entries`) raises as it came."""
    for attempt in range(_TRIES):
        writes = [*entries, *feed_writes(db.table, read_head(db), feed, db.clock.now())]
        try:
            db.clients.dynamodb.transact_write_items(TransactItems=writes)
            return
        except Exception as exc:
            if not feed or not is_error(exc, "TransactionCanceledException"):
                raise
            codes = [r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])]
            head_moved = len(codes) == len(writes) and codes[-1] in _MOVED
            if not head_moved or "ConditionalCheckFailed" in codes[: len(entries)]:
                raise
        time.sleep(random.uniform(0, _PAUSE * 2**attempt))  # noqa: S311 - a pause, not a secret
    raise StoreUnavailable("feed: the head kept moving (contention)")


class AwsChangeFeed:
    def __init__(self, db: TableContext) -> None:
        self._db = db
        self._epoch: str | None = None

    async def changes_since(self, cursor: str, *, limit: int = 500) -> Sequence[Change]:
        return await self._db.run("feed.changes_since", self._changes_since, cursor, limit)

    async def latest(self) -> str:
        return await self._db.run("feed.latest", self._latest)

    async def wait_for_change(self, after: str, timeout: float) -> None:
        position = await self._db.run("feed.wait", self._position, after)
        deadline = time.monotonic() + max(0.0, timeout)
        while await self._db.run("feed.wait", head_position, self._db) <= position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(POLL_INTERVAL, remaining))

    def _epoch_of_table(self) -> str:
        if self._epoch is None:
            self._epoch = ensure_epoch(self._db)
        return self._epoch

    def _cursor(self, position: int) -> str:
        return f"{self._epoch_of_table()}.{position}"

    def _position(self, cursor: str) -> int:
        epoch, dot, text = cursor.partition(".")
        try:
            position = parse_int64(text, minimum=0)
        except ValueError:
            raise InvalidCursor("not a cursor of this change feed") from None
        if not dot or epoch != self._epoch_of_table():
            raise InvalidCursor("not a cursor of this change feed")
        return position

    def _latest(self) -> str:
        return self._cursor(head_position(self._db))

    def _changes_since(self, cursor: str, limit: int) -> list[Change]:
        after = self._position(cursor)
        if limit <= 0:
            if after > head_position(self._db):
                raise InvalidCursor("the cursor is ahead of this change feed")
            return []
        response = self._db.clients.dynamodb.query(
            TableName=self._db.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
            ExpressionAttributeValues=to_item({":pk": keys.FEED, ":first": keys.n20(after + 1), ":last": _LAST}),
            ConsistentRead=True,
            Limit=limit,
        )
        entries = [from_item(item) for item in response.get("Items", [])]
        if not entries:
            if after > head_position(self._db):
                raise InvalidCursor("the cursor is ahead of this change feed")
            return []
        if int(entries[0]["sk"]) != after + 1:
            raise InvalidCursor("the changes after this cursor have expired")
        return [Change(self._cursor(int(e["sk"])), str(e["kind"]), str(e["ref"])) for e in entries]
