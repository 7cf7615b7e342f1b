"""The inbox on DynamoDB, SNS and SQS: the delivery item is the record (and the dedupe), the inbox queue carries
notices of it (docs/aws/dynamodb.md; docs/adr/0012).

- `append`: a receipt number (`receipts`: the receipt time, no round trip); a large body to S3 first
  (`payloads`); then one transaction of the delivery item, put on the condition that its id is new (the permanent
  dedupe), with the `UNPUBLISHED` marker, and its body item (in no index; with a TTL when a retention is
  configured), so that a record never lacks its body nor a body its record; then its notice
  (`{"delivery_id", "seq"}`, with the attributes that subscription filter policies match) published to the
  deliveries topic, whose raw subscription puts it on the inbox queue. A publish that fails leaves the marker: the
  receiver answers 503, and the sweeper (`sweep`) or a later copy of the delivery publishes it again.
- A duplicate's append (the delivery item's condition failed) is False. When the recorded delivery is still
  unprocessed and was received more than `sweep_after` ago, its notice is published again first: the repair of an
  append that crashed between its transaction and its publish, without waiting for the sweeper. (The marker stays
  until an outcome is recorded, so a younger item cannot tell "not published" from "published, not processed
  yet": its copies publish nothing, or every copy of a busy delivery would add a notice.)
- `claim` receives notices (the visibility timeout is the lease), reads their delivery and body items in one
  consistent `BatchGetItem` (bodies from S3 where they are there; a body its TTL expired reads as empty) and hands
  them out oldest first; `attempts` is the message's receive count - 1 (a lease that ran out counts, as with
  JetStream), `exhausted` at the queue's `maxReceiveCount` (the next receive would move it to the DLQ). `adopt`
  does the same for the messages a Lambda event source delivers. A notice whose delivery item does not exist is deleted.
- `settle`: DONE and FAILED delete the message (but an event source's: Lambda deletes those the function does not
  report failed, so deleting them too would be one more call per batch for nothing), RETRY moves its visibility
  to the retry time; `extend` moves it by the lease. A receipt handle that is no longer valid changes nothing
  (SQS itself may still accept a stale handle of a message received again since: the worker settles only after
  the store committed, so that is harmless).
- `requeue` sets the delivery item back to received (the read side shows it so, as SQLite's does) and publishes
  its notice again. `depth` is the queue's visible, in-flight and delayed messages.

Every time comes from the injected clock, except the lease and retry delays themselves: they are SQS's timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error, visibility
from ghingest.adapters.aws.items import (
    body_item,
    delivery_item,
    notice,
    notice_attributes,
    stored_delivery,
    unpublished_sort,
)
from ghingest.adapters.aws.payloads import expires_at, max_payload_bytes, put_body, with_bodies
from ghingest.adapters.aws.receipts import RECEIPTS
from ghingest.adapters.aws.table import Item, TableContext, from_item, get, key, put_new, query, values
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.errors import StoreUnavailable
from ghingest.core.processing import StoredDelivery, at_receipt, tolerant_event_record
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Claimed, InboxCapabilities, Settle, Settlement

log = structlog.get_logger("ghingest.aws.inbox")

POLL_INTERVAL = 0.2  # seconds between looks at the queue while waiting for work
_RECEIVE_BATCH = 10  # messages per ReceiveMessage and per batch call (SQS's maximum)
_APPEND_TRIES = 3  # an append's transaction, while a concurrent copy's transaction conflicts with it
_DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True, slots=True)
class SqsHandle:
    """A claim: the message's id and the receipt handle of this receive of it."""

    message_id: str
    receipt_handle: str
    event_source: bool = False  # delivered by a Lambda event source, which deletes it when the batch succeeds


@dataclass(frozen=True, slots=True)
class _Received:
    handle: SqsHandle
    delivery_id: str | None  # None: not a notice
    receives: int


def _received(message: Mapping[str, Any], *, event_source: bool = False) -> _Received:
    """A message as ReceiveMessage returns it (`MessageId`, `Body`, …) or as a Lambda event source delivers it
    (`messageId`, `body`, …)."""

    def field(name: str) -> Any:
        return message.get(name, message.get(name[0].lower() + name[1:]))

    attributes = field("Attributes") or {}
    try:
        document = orjson.loads(field("Body") or "")
    except orjson.JSONDecodeError:
        document = None
    delivery_id = document.get("delivery_id") if isinstance(document, dict) else None
    return _Received(
        handle=SqsHandle(str(field("MessageId")), str(field("ReceiptHandle")), event_source),
        delivery_id=delivery_id if isinstance(delivery_id, str) and delivery_id else None,
        receives=int(attributes.get("ApproximateReceiveCount", "1")),
    )


def _batch_size(wanted: int, max_bytes: int | None, claimed: int, taken: int) -> int:
    """Messages to receive next. Sizes are known only once received (and a message received and handed back would
    count as a receive): within a byte budget, one first, then as many as the bodies so far say still fit."""
    size = min(_RECEIVE_BATCH, wanted)
    if max_bytes is None:
        return size
    if not claimed:
        return 1
    average = max(1.0, taken / claimed)
    return max(1, min(size, int((max_bytes - taken) // average)))


def _handle(handle: object) -> SqsHandle:
    if not isinstance(handle, SqsHandle):
        raise TypeError(f"not a claim handle of the AWS inbox: {type(handle).__name__}")
    return handle


class AwsInbox:
    def __init__(self, db: TableContext) -> None:
        self._db = db
        self.capabilities = InboxCapabilities(
            max_payload_bytes=max_payload_bytes(db), requeue=True, oldest_waiting=False
        )

    # --- the port -------------------------------------------------------------------------------------------------

    async def append(self, delivery: IncomingDelivery, *, received_at: float) -> bool:
        return await self._db.run("inbox.append", self._append, delivery, received_at)

    async def claim(self, *, limit: int, lease_seconds: float, max_bytes: int | None = None) -> Sequence[Claimed]:
        return await self._db.run("inbox.claim", self._claim, limit, lease_seconds, max_bytes)

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        await self._db.run("inbox.settle", self._settle, settlements)

    async def extend(self, handles: Sequence[object], *, lease_seconds: float) -> None:
        timeout = visibility(lease_seconds)
        await self._db.run("inbox.extend", self._change_visibility, [(_handle(h), timeout) for h in handles])

    async def requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        return await self._db.run("inbox.requeue", self._requeue, deliveries)

    async def wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        while await self._db.run("inbox.wait", self._visible) == 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(POLL_INTERVAL, remaining))

    async def oldest_waiting_at(self) -> float | None:
        """Not known: SQS gives the age of its oldest message to CloudWatch only (`ApproximateAgeOfOldestMessage`,
        an alarm of the stack), not to a queue attribute."""
        raise NotImplementedError("the SQS inbox does not say when its oldest waiting delivery came")

    async def depth(self) -> int:
        attributes = await self._db.run("inbox.depth", self._queue_attributes, _DEPTH_ATTRIBUTES)
        return sum(int(attributes.get(name, 0)) for name in _DEPTH_ATTRIBUTES)

    async def ping(self) -> None:
        await self._db.run("inbox.ping", self._ping)

    # --- the AWS profile's own (the processor and sweeper functions) ----------------------------------------------

    async def adopt(self, records: Sequence[Mapping[str, Any]]) -> list[Claimed]:
        """Claims of the messages an SQS event source delivered to the processor function (received already)."""
        received = [_received(r, event_source=True) for r in records]
        return await self._db.run("inbox.adopt", self._resolve, received)

    def message_id(self, handle: object) -> str:
        return _handle(handle).message_id

    async def sweep(self, *, older_than: float) -> int:
        """Publish again the notices of deliveries still unprocessed `older_than` seconds after their receipt (a
        publish that failed after the put); how many."""
        return await self._db.run("inbox.sweep", self._sweep, older_than)

    # --- blocking parts (on a thread) -----------------------------------------------------------------------------

    def _append(self, delivery: IncomingDelivery, received_at: float) -> bool:
        stored = at_receipt(delivery, seq=RECEIPTS.next(received_at), received_at=received_at)
        record = tolerant_event_record(stored)  # the notice's attributes, by the processor's own parser
        body_key = put_body(self._db, delivery.delivery_id, stored.body)
        item = delivery_item(stored, action=record.action, repository=record.repository)
        body = body_item(stored, body_key=body_key, expires_at=expires_at(self._db, received_at))
        if not self._put_new(delivery.delivery_id, item, body):
            return False
        self._publish(from_item(item))
        return True

    def _put_new(self, delivery_id: str, item: Item, body: Item) -> bool:
        """The delivery item (on the condition that its id is new) and its body item in one transaction; False for
        a duplicate, after its repair. A conflict with a concurrent copy's transaction is tried again: once that
        one committed, this one is a duplicate."""
        delivery_put = {
            "TableName": self._db.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(pk)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        entries = [{"Put": delivery_put}, put_new(self._db.table, body)]
        attempt = 1
        while True:
            try:
                self._db.clients.dynamodb.transact_write_items(TransactItems=entries)
                return True
            except Exception as exc:
                if not is_error(exc, "TransactionCanceledException"):
                    raise
                reasons = getattr(exc, "response", {}).get("CancellationReasons") or [{}]
                if reasons[0].get("Code") == "ConditionalCheckFailed":  # the delivery is recorded: a duplicate
                    old = reasons[0].get("Item")
                    self._repair(from_item(old) if old else get(self._db, keys.delivery(delivery_id)))
                    return False
                if attempt == _APPEND_TRIES or not any(r.get("Code") == "TransactionConflict" for r in reasons):
                    raise
                attempt += 1

    def _repair(self, attrs: Mapping[str, Any] | None) -> None:
        """Publish a recorded delivery's notice again if it may never have been published (see the module)."""
        if attrs is None or attrs.get("gsi3pk") != keys.UNPUBLISHED:
            return
        if attrs.get("status") != DeliveryStatus.RECEIVED.value:
            return
        if float(attrs["received_at"]) <= self._db.clock.now() - self._db.options.sweep_after:
            log.info("delivery.republished", delivery_id=attrs["delivery_id"])
            self._publish(attrs)

    def _publish(self, attrs: Mapping[str, Any]) -> None:
        topic = self._db.options.deliveries_topic_arn
        if topic is None:
            raise StoreUnavailable("inbox: no deliveries topic is configured")
        self._db.clients.sns.publish(
            TopicArn=topic,
            Message=notice(str(attrs["delivery_id"]), int(attrs["seq"])),
            MessageAttributes=notice_attributes(attrs),
        )

    @property
    def _queue(self) -> str:
        url = self._db.options.inbox_queue_url
        if url is None:
            raise StoreUnavailable("inbox: no inbox queue is configured")
        return url

    def _claim(self, limit: int, lease_seconds: float, max_bytes: int | None) -> list[Claimed]:
        claimed: list[Claimed] = []
        taken = 0
        while len(claimed) < limit and (max_bytes is None or not claimed or taken < max_bytes):
            response = self._db.clients.sqs.receive_message(
                QueueUrl=self._queue,
                MaxNumberOfMessages=_batch_size(limit - len(claimed), max_bytes, len(claimed), taken),
                VisibilityTimeout=visibility(lease_seconds),
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
                WaitTimeSeconds=0,
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            batch = self._resolve([_received(m) for m in messages])
            claimed += batch
            taken += sum(len(c.delivery.body) for c in batch)
        return sorted(claimed, key=lambda c: c.delivery.seq)

    def _resolve(self, received: Sequence[_Received]) -> list[Claimed]:
        """Claims of received notices, oldest first; a notice of no delivery (or a second one of a delivery in
        the same batch) is deleted."""
        first: dict[str, _Received] = {}
        extra: list[SqsHandle] = []
        for r in received:
            if r.delivery_id is None or r.delivery_id in first:
                extra.append(r.handle)
            else:
                first[r.delivery_id] = r
        found = with_bodies(self._db, first)
        claimed = []
        for delivery_id, r in first.items():
            if delivery_id not in found:
                log.warning("delivery.notice_without_item", delivery_id=delivery_id)
                extra.append(r.handle)
                continue
            attrs, body = found[delivery_id]
            delivery = stored_delivery(attrs, body, attempts=max(0, r.receives - 1))
            exhausted = r.receives >= self._db.options.inbox_max_receives
            claimed.append(Claimed(delivery=delivery, handle=r.handle, exhausted=exhausted))
        if extra:
            self._delete(extra)
        return sorted(claimed, key=lambda c: c.delivery.seq)

    def _settle(self, settlements: Sequence[Settlement]) -> None:
        now = self._db.clock.now()
        finished = [
            h for s in settlements if s.outcome is not Settle.RETRY and not (h := _handle(s.handle)).event_source
        ]
        retried = [
            (_handle(s.handle), visibility(0.0 if s.retry_at is None else s.retry_at - now))
            for s in settlements
            if s.outcome is Settle.RETRY
        ]
        self._delete(finished)
        self._change_visibility(retried)

    def _delete(self, handles: Sequence[SqsHandle]) -> None:
        for start in range(0, len(handles), _RECEIVE_BATCH):
            chunk = handles[start : start + _RECEIVE_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": h.receipt_handle} for i, h in enumerate(chunk)]
            self._db.clients.sqs.delete_message_batch(QueueUrl=self._queue, Entries=entries)
            # Failed entries are stale or invalid receipt handles: nothing to settle.

    def _change_visibility(self, changes: Sequence[tuple[SqsHandle, int]]) -> None:
        for start in range(0, len(changes), _RECEIVE_BATCH):
            chunk = changes[start : start + _RECEIVE_BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": h.receipt_handle, "VisibilityTimeout": timeout}
                for i, (h, timeout) in enumerate(chunk)
            ]
            self._db.clients.sqs.change_message_visibility_batch(QueueUrl=self._queue, Entries=entries)

    def _requeue(self, deliveries: Sequence[StoredDelivery]) -> int:
        now = self._db.clock.now()
        count = 0
        for d in deliveries:
            try:
                response = self._db.clients.dynamodb.update_item(
                    TableName=self._db.table,
                    Key=key(keys.delivery(d.delivery_id)),
                    UpdateExpression="SET #status = :received, attempts = :zero, gsi3pk = :marker, gsi3sk = :at"
                    " REMOVE #error",
                    ConditionExpression="attribute_exists(pk) AND seq = :seq",
                    ExpressionAttributeNames={"#status": "status", "#error": "error"},
                    ExpressionAttributeValues=values(
                        received=DeliveryStatus.RECEIVED.value,
                        zero=0,
                        marker=keys.UNPUBLISHED,
                        at=unpublished_sort(now, d.delivery_id),
                        seq=d.seq,
                    ),
                    ReturnValues="ALL_NEW",
                )
            except Exception as exc:
                if is_error(exc, "ConditionalCheckFailedException"):
                    continue  # not a delivery of this table
                raise
            self._publish(from_item(response["Attributes"]))
            count += 1
        return count

    def _queue_attributes(self, names: Sequence[str]) -> dict[str, str]:
        response = self._db.clients.sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=list(names))
        return dict(response.get("Attributes", {}))

    def _visible(self) -> int:
        return int(self._queue_attributes(["ApproximateNumberOfMessages"]).get("ApproximateNumberOfMessages", 0))

    def _ping(self) -> None:
        topic = self._db.options.deliveries_topic_arn
        if topic is None:
            raise StoreUnavailable("inbox: no deliveries topic is configured")
        self._db.clients.sns.get_topic_attributes(TopicArn=topic)
        self._queue_attributes(["QueueArn"])

    def _sweep(self, older_than: float) -> int:
        before = keys.t(self._db.clock.now() - older_than)
        count = 0
        for attrs in query(
            self._db,
            IndexName="gsi3",
            KeyConditionExpression="gsi3pk = :marker AND gsi3sk < :before",
            ExpressionAttributeValues=values(marker=keys.UNPUBLISHED, before=before),
        ):
            if attrs.get("status") == DeliveryStatus.RECEIVED.value:
                self._publish(attrs)
                count += 1
        return count
