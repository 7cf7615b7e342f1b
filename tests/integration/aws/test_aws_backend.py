"""What only the AWS backend does: the notice published after the put (and its repair), the S3 claim check, the body
in an item of its own (in no index, with a TTL), SQS's redeliveries and receive limit, the feed's commit order under
concurrent processors, an endpoint that is down."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

from ghingest.adapters.aws import AwsOptions, keys, open_aws_backend
from ghingest.adapters.aws.clients import clients_for
from ghingest.adapters.aws.payloads import INLINE_LIMIT
from ghingest.adapters.aws.table import key
from ghingest.core.errors import PayloadTooLarge, StoreUnavailable
from ghingest.core.states import DeliveryStatus
from ghingest.ports import Backend, EventQuery, ManualClock, ReprocessSelection, Settle, Settlement
from tests.contract.support import incoming, outcome_of

pytestmark = pytest.mark.anyio


async def test_a_put_whose_publish_failed_is_published_by_a_later_copy(
    backend: Any, options: AwsOptions, open_backend: Callable[[AwsOptions], Backend], clock: ManualClock
) -> None:
    broken_topic = options.deliveries_topic_arn.rsplit(":", 1)[0] + ":no-such-topic"  # type: ignore[union-attr]
    crashed = open_backend(dataclasses.replace(options, deliveries_topic_arn=broken_topic))
    with pytest.raises(StoreUnavailable):
        await crashed.inbox.append(incoming("lost"), received_at=clock.now())
    assert await backend.inbox.depth() == 0  # recorded, but no notice on the queue
    assert (await backend.reads.get_delivery("lost")).status is DeliveryStatus.RECEIVED
    assert await backend.inbox.append(incoming("lost"), received_at=clock.now()) is False
    assert await backend.inbox.depth() == 0  # a young copy publishes nothing: the notice may be on its way
    clock.advance(options.sweep_after + 1)
    assert await backend.inbox.append(incoming("lost"), received_at=clock.now()) is False
    (claimed,) = await backend.inbox.claim(limit=10, lease_seconds=60)
    assert claimed.delivery.delivery_id == "lost"
    await backend.store.record_outcomes([outcome_of(claimed.delivery)])
    await backend.inbox.settle([Settlement(claimed.handle, Settle.DONE)])
    assert await backend.inbox.append(incoming("lost"), received_at=clock.now()) is False
    assert await backend.inbox.depth() == 0  # processed: never published again


async def test_the_sweeper_publishes_what_was_never_published(
    backend: Any, options: AwsOptions, open_backend: Callable[[AwsOptions], Backend], clock: ManualClock
) -> None:
    crashed = open_backend(dataclasses.replace(options, deliveries_topic_arn=f"{options.forwards_topic_arn}-x"))
    with pytest.raises(StoreUnavailable):
        await crashed.inbox.append(incoming("swept"), received_at=clock.now())
    assert await backend.inbox.sweep(older_than=60) == 0
    clock.advance(61)
    assert await backend.inbox.sweep(older_than=60) == 1
    assert [c.delivery.delivery_id for c in await backend.inbox.claim(limit=10, lease_seconds=60)] == ["swept"]


async def test_a_large_body_goes_through_s3(
    backend: Any, options: AwsOptions, open_backend: Callable[[AwsOptions], Backend], clock: ManualClock
) -> None:
    large = dataclasses.replace(incoming("large"), body=incoming("large").body + b" " * (INLINE_LIMIT * 2))
    assert backend.inbox.capabilities.max_payload_bytes is None
    assert await backend.inbox.append(large, received_at=clock.now()) is True
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
    assert claimed.delivery.body == large.body
    different = dataclasses.replace(large, body=large.body + b" ", hook_id="99")
    assert await backend.inbox.append(different, received_at=clock.now()) is False  # never overwrites the body
    await backend.store.record_sighting(different, received_at=clock.now())
    view = await backend.reads.get_delivery("large")
    assert view.body == large.body
    assert [(s.hook_id, s.same_body) for s in view.sightings] == [("99", False)]
    no_bucket = open_backend(dataclasses.replace(options, payload_bucket=None))
    assert no_bucket.inbox.capabilities.max_payload_bytes == INLINE_LIMIT
    with pytest.raises(PayloadTooLarge):
        await no_bucket.inbox.append(dataclasses.replace(large, delivery_id="large-2"), received_at=clock.now())


async def test_a_body_the_bucket_expired_reads_as_empty_and_the_record_stays(
    backend: Any, options: AwsOptions, clock: ManualClock
) -> None:
    large = dataclasses.replace(incoming("expired"), body=incoming("expired").body + b" " * (INLINE_LIMIT * 2))
    assert await backend.inbox.append(large, received_at=clock.now()) is True
    clients = clients_for(options)
    clients.s3.delete_object(Bucket=options.payload_bucket, Key=keys.payload("expired"))  # the lifecycle rule
    view = await backend.reads.get_delivery("expired")
    assert view is not None
    assert (view.delivery_id, view.body) == ("expired", b"")


def _raw(options: AwsOptions, item_key: dict[str, str]) -> dict[str, Any]:
    """An item that exists, as the table holds it (attribute-value maps), read with the low-level client."""
    response = clients_for(options).dynamodb.get_item(TableName=options.table, Key=key(item_key), ConsistentRead=True)
    assert "Item" in response, item_key
    item: dict[str, Any] = response["Item"]
    return item


async def test_the_delivery_item_carries_no_body_and_the_body_item_no_index_key(
    backend: Any, options: AwsOptions, clock: ManualClock
) -> None:
    small = incoming("split")
    large = dataclasses.replace(incoming("split-large"), body=incoming("split-large").body + b" " * INLINE_LIMIT)
    for delivery in (small, large):
        assert await backend.inbox.append(delivery, received_at=clock.now()) is True
    for delivery in (small, large):
        record = _raw(options, keys.delivery(delivery.delivery_id))
        body = _raw(options, keys.body(delivery.delivery_id))
        assert not {"body", "body_key"} & set(record)
        assert {"gsi1pk", "gsi3pk"} <= set(record)  # the record is listed (and marked unpublished), the body not
        assert not [name for name in body if name.startswith("gsi")]
        assert "expires_at" not in body  # no retention configured: kept
    assert _raw(options, keys.body("split"))["body"] == {"B": small.body}
    large_body = _raw(options, keys.body("split-large"))
    assert "body" not in large_body
    assert large_body["body_key"] == {"S": keys.payload("split-large")}
    claimed = await backend.inbox.claim(limit=10, lease_seconds=60)
    assert {c.delivery.delivery_id: c.delivery.body for c in claimed} == {
        "split": small.body,
        "split-large": large.body,
    }


async def test_with_a_retention_the_body_item_expires_that_many_days_after_receipt(
    options: AwsOptions, open_backend: Callable[[AwsOptions], Backend], clock: ManualClock
) -> None:
    backend = open_backend(dataclasses.replace(options, payload_retention_days=3))
    received_at = clock.now()
    assert await backend.inbox.append(incoming("kept-3-days"), received_at=received_at) is True
    body = _raw(options, keys.body("kept-3-days"))
    assert int(body["expires_at"]["N"]) == math.ceil(received_at + 3 * 86400)
    assert "expires_at" not in _raw(options, keys.delivery("kept-3-days"))  # the record stays


async def test_a_body_item_its_ttl_deleted_reads_as_empty_and_the_record_stays(
    backend: Any, options: AwsOptions, clock: ManualClock
) -> None:
    delivery = incoming("gone", event="push", payload={"ref": "x"})
    assert await backend.inbox.append(delivery, received_at=clock.now()) is True
    clients_for(options).dynamodb.delete_item(TableName=options.table, Key=key(keys.body("gone")))  # as TTL would
    view = await backend.reads.get_delivery("gone")
    assert view is not None
    assert (view.delivery_id, view.event, view.status, view.body) == ("gone", "push", DeliveryStatus.RECEIVED, b"")
    assert view.headers == dict(delivery.headers)
    (claimed,) = await backend.inbox.claim(limit=10, lease_seconds=60)
    assert (claimed.delivery.delivery_id, claimed.delivery.body) == ("gone", b"")
    page = await backend.reads.deliveries_to_reprocess(ReprocessSelection())
    assert [(d.delivery_id, d.body) for d in page.items] == [("gone", b"")]


async def test_a_redelivered_message_is_recorded_once_and_exhausted_at_the_receive_limit(
    options: AwsOptions, open_backend: Callable[[AwsOptions], Backend], clock: ManualClock
) -> None:
    backend = open_backend(dataclasses.replace(options, inbox_max_receives=3))
    await backend.inbox.append(incoming("again", event="push", payload={"ref": "x"}), received_at=clock.now())
    receives = []
    for _ in range(3):  # a lease of 0 s: visible again at once, as after a crashed worker's lease
        (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=0)
        receives.append((claimed.delivery.attempts, claimed.exhausted))
        await backend.store.record_outcomes([outcome_of(claimed.delivery)])
    assert receives == [(0, False), (1, False), (2, True)]
    events = await backend.reads.list_events(EventQuery())
    assert [e.record.delivery_id for e in events.items] == ["again"]
    changes = await backend.feed.changes_since(f"{(await backend.feed.latest()).split('.')[0]}.0")
    assert [(c.kind, c.ref) for c in changes] == [("event", "again")] * 3  # each recording is a change


async def test_concurrent_processors_commit_the_feed_in_order(backend: Any, clock: ManualClock) -> None:
    start = await backend.feed.latest()
    for n in range(12):
        await backend.inbox.append(incoming(f"c{n}", event="push", payload={"ref": str(n)}), received_at=clock.now())
    claimed = await backend.inbox.claim(limit=12, lease_seconds=60)
    outcomes = [outcome_of(c.delivery) for c in claimed]
    await asyncio.gather(*(backend.store.record_outcomes(outcomes[i::3]) for i in range(3)))
    changes = await backend.feed.changes_since(start)
    assert sorted(c.ref for c in changes) == sorted(f"c{n}" for n in range(12))
    positions = [int(c.cursor.split(".")[1]) for c in changes]
    assert positions == list(range(positions[0], positions[0] + 12))  # no gap, no repeat: none committed late
    for i in range(3):  # each batch's changes in its own order
        mine = [c.ref for c in changes if c.ref in {o.delivery.delivery_id for o in outcomes[i::3]}]
        assert mine == [o.delivery.delivery_id for o in outcomes[i::3]]


async def test_an_endpoint_that_is_down_is_store_unavailable(clock: ManualClock) -> None:
    down = open_aws_backend(
        AwsOptions(table="nowhere", region="us-east-1", endpoint_url="http://127.0.0.1:9"), clock=clock
    )
    with pytest.raises(StoreUnavailable):
        down.resources.upgrade()
    with pytest.raises(StoreUnavailable):
        await down.inbox.append(incoming("x"), received_at=clock.now())
    with pytest.raises(StoreUnavailable):
        await down.reads.get_delivery("x")
