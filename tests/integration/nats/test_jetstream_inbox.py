"""What only the JetStream inbox does, on a real 3-node cluster: the broker's own timers (ack wait, nak delays,
delivery limit), its PubAck duplicate flag, large messages, and stream/consumer setup."""

from __future__ import annotations

import dataclasses
import time

import nats
import pytest

from ghingest.adapters.nats import codec
from ghingest.core.errors import PayloadTooLarge
from ghingest.ports import Settle, Settlement
from tests.contract.support import incoming
from tests.integration.nats.conftest import eventually, open_inbox
from tests.nats_cluster import NatsCluster, delete_stream, unique_name

pytestmark = pytest.mark.anyio


async def stream_messages(cluster: NatsCluster, stream: str) -> int:
    nc = await nats.connect(servers=list(cluster.urls), allow_reconnect=False)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


async def test_a_duplicate_puback_is_false_and_stores_nothing(cluster: NatsCluster) -> None:
    async with open_inbox(cluster) as inbox:
        assert await inbox.append(incoming("dup-1"), received_at=1.0) is True
        assert await inbox.append(incoming("dup-1", hook_id="other"), received_at=2.0) is False
        assert await stream_messages(cluster, inbox.options.stream) == 1
        (claimed,) = await inbox.claim(limit=10, lease_seconds=30)
        assert (claimed.delivery.hook_id, claimed.delivery.received_at) == ("42", 1.0)  # the first one's


async def test_an_unsettled_claim_is_redelivered_after_the_ack_wait(cluster: NatsCluster) -> None:
    async with open_inbox(cluster, ack_wait=1.0) as inbox:
        await inbox.append(incoming("lease"), received_at=1.0)
        (first,) = await inbox.claim(limit=1, lease_seconds=1)
        claimed_at = time.monotonic()
        assert first.delivery.attempts == 0
        assert await inbox.claim(limit=1, lease_seconds=1) == []  # hidden while the lease runs
        (again,) = await eventually(lambda: inbox.claim(limit=1, lease_seconds=1))
        assert time.monotonic() - claimed_at >= 0.9
        assert (again.delivery.delivery_id, again.delivery.attempts) == ("lease", 1)  # a lapsed lease counts
        await inbox.settle([Settlement(again.handle, Settle.DONE)])
        assert await inbox.depth() == 0


async def test_extending_keeps_a_claim_past_the_ack_wait(cluster: NatsCluster) -> None:
    async with open_inbox(cluster, ack_wait=1.0) as inbox:
        await inbox.append(incoming("slow"), received_at=1.0)
        (claimed,) = await inbox.claim(limit=1, lease_seconds=1)
        until = time.monotonic() + 2.5
        while time.monotonic() < until:  # 2.5 ack waits, extended about every 0.1 s: never redelivered
            await inbox.extend([claimed.handle], lease_seconds=1)
            assert await inbox.claim(limit=1, lease_seconds=1) == []  # an empty claim takes CLAIM_WAIT (0.1 s)
        await inbox.settle([Settlement(claimed.handle, Settle.DONE)])
        assert await inbox.depth() == 0


async def test_the_last_allowed_delivery_is_claimed_exhausted(cluster: NatsCluster) -> None:
    async with open_inbox(cluster, ack_wait=1.0, max_deliver=2) as inbox:
        await inbox.append(incoming("poison"), received_at=1.0)
        (first,) = await inbox.claim(limit=1, lease_seconds=1)
        assert not first.exhausted  # a worker "crashes" on it: never settled
        (last,) = await eventually(lambda: inbox.claim(limit=1, lease_seconds=1))
        assert last.exhausted
        assert last.delivery.attempts == 1
        await inbox.settle([Settlement(last.handle, Settle.FAILED)])  # what the worker does with it
        assert await inbox.depth() == 0
        assert await stream_messages(cluster, inbox.options.stream) == 0


async def test_a_retry_comes_back_after_its_nak_delay(cluster: NatsCluster) -> None:
    async with open_inbox(cluster) as inbox:
        await inbox.append(incoming("later"), received_at=1.0)
        (claimed,) = await inbox.claim(limit=1, lease_seconds=30)
        settled_at = time.monotonic()
        await inbox.settle([Settlement(claimed.handle, Settle.RETRY, retry_at=time.time() + 1.5)])
        await inbox.settle([Settlement(claimed.handle, Settle.DONE)])  # settled already: ignored
        assert await inbox.depth() == 1
        assert await inbox.claim(limit=1, lease_seconds=30) == []
        (again,) = await eventually(lambda: inbox.claim(limit=1, lease_seconds=30))
        waited = time.monotonic() - settled_at
        assert 1.4 <= waited < 5.0, waited
        assert again.delivery.attempts == 1


async def test_a_large_body_round_trips_and_the_payload_limit_is_stated(cluster: NatsCluster) -> None:
    async with open_inbox(cluster) as inbox:
        assert inbox.capabilities.max_payload_bytes == cluster.max_payload - codec.HEADER_ROOM
        small = incoming("big")
        body = small.body + b" " * (3 * 2**20)  # 3 MiB+: past the default 1 MB max_payload
        assert await inbox.append(dataclasses.replace(small, body=body), received_at=1.0) is True
        (claimed,) = await inbox.claim(limit=1, lease_seconds=30, max_bytes=1)
        assert claimed.delivery.body == body
        too_big = dataclasses.replace(small, delivery_id="too-big", body=b" " * cluster.max_payload)
        with pytest.raises(PayloadTooLarge):
            await inbox.append(too_big, received_at=1.0)


async def test_claims_stop_near_the_byte_budget(cluster: NatsCluster) -> None:
    async with open_inbox(cluster) as inbox:
        for n in range(6):
            delivery = incoming(f"b-{n}")
            await inbox.append(dataclasses.replace(delivery, body=delivery.body + b" " * 100_000), received_at=1.0)
        first = await inbox.claim(limit=100, lease_seconds=30, max_bytes=250_000)
        assert [c.delivery.delivery_id for c in first] == ["b-0", "b-1"]
        rest = await inbox.claim(limit=100, lease_seconds=30)
        assert [c.delivery.delivery_id for c in rest] == ["b-2", "b-3", "b-4", "b-5"]


async def test_upgrade_updates_the_consumer_and_keeps_the_stream(cluster: NatsCluster) -> None:
    from ghingest.adapters.nats import JetStreamOptions, NatsInbox, NatsResources

    stream = unique_name("UPG")
    try:
        first = NatsInbox(JetStreamOptions(servers=cluster.urls, stream=stream, ack_wait=30, max_bytes=2**26))
        NatsResources(first).upgrade()
        NatsResources(first).upgrade()  # idempotent
        await first.start()
        await first.append(incoming("kept"), received_at=1.0)
        await first.close()
        second = NatsInbox(JetStreamOptions(servers=cluster.urls, stream=stream, ack_wait=7, max_deliver=5))
        NatsResources(second).upgrade()
        nc = await nats.connect(servers=list(cluster.urls), allow_reconnect=False)
        try:
            info = await nc.jetstream().consumer_info(stream, second.options.consumer)
            assert (info.config.ack_wait, info.config.max_deliver) == (7, 5)
            assert (await nc.jetstream().stream_info(stream)).state.messages == 1
        finally:
            await nc.close()
    finally:
        delete_stream(cluster.urls, stream)


async def test_a_foreign_message_is_termed_not_processed(cluster: NatsCluster) -> None:
    async with open_inbox(cluster) as inbox:
        nc = await nats.connect(servers=list(cluster.urls), allow_reconnect=False)
        try:
            await nc.jetstream().publish(f"{inbox.options.subject_prefix}.release", b"{}")
        finally:
            await nc.close()
        await inbox.append(incoming("ours"), received_at=1.0)
        claimed = await eventually(lambda: inbox.claim(limit=10, lease_seconds=30))
        assert [c.delivery.delivery_id for c in claimed] == ["ours"]
        await inbox.settle([Settlement(claimed[0].handle, Settle.DONE)])
        assert await eventually(lambda: _is_zero(inbox.depth()))


async def _is_zero(depth: object) -> bool:
    return await depth == 0  # type: ignore[misc]
