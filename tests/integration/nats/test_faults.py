"""The JetStream inbox when nodes die: a cluster of this module's own, killed with `kill -9` and restarted."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from ghingest.core.errors import StoreUnavailable
from ghingest.ports import Settle, Settlement
from tests.contract.support import incoming
from tests.integration.nats.conftest import eventually, open_inbox
from tests.nats_cluster import NatsCluster

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def drain_ids(inbox: object) -> list[str]:
    """Claim and settle everything there is; the delivery ids, in claim order (a repeat would show twice)."""
    seen: list[str] = []
    while claimed := await inbox.claim(limit=200, lease_seconds=30):  # type: ignore[attr-defined]
        seen += [c.delivery.delivery_id for c in claimed]
        await inbox.settle([Settlement(c.handle, Settle.DONE) for c in claimed])  # type: ignore[attr-defined]
    return seen


async def stream_leader(cluster: NatsCluster, stream: str) -> int:
    nc = await nats.connect(servers=list(cluster.urls), allow_reconnect=False)
    try:
        leader = (await nc.jetstream().stream_info(stream)).cluster.leader  # type: ignore[union-attr]
    finally:
        await nc.close()
    return [node.name for node in cluster.nodes].index(leader)


async def test_with_the_cluster_down_an_append_fails_in_time_and_is_never_stored_later(
    own_cluster: NatsCluster,
) -> None:
    async with open_inbox(own_cluster, publish_timeout=1.5) as inbox:
        assert await inbox.append(incoming("before"), received_at=1.0) is True
        own_cluster.kill_all()
        try:
            for n in range(3):
                started = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await inbox.append(incoming(f"refused-{n}"), received_at=1.0)
                assert time.monotonic() - started < 1.5 + 0.5
            with pytest.raises(StoreUnavailable):
                await inbox.ping()
        finally:
            own_cluster.start_all()
        await eventually(lambda: _pings(inbox))  # reconnected by itself
        assert await drain_ids(inbox) == ["before"]  # no refused append was sent after the recovery
        assert await inbox.append(incoming("after"), received_at=1.0) is True
        assert await drain_ids(inbox) == ["after"]


async def _pings(inbox: object) -> bool:
    await inbox.ping()  # type: ignore[attr-defined]
    return True


async def test_killing_the_stream_leader_mid_load_loses_no_acknowledged_append(own_cluster: NatsCluster) -> None:
    async with open_inbox(own_cluster, publish_timeout=4.0) as inbox:
        accepted: list[str] = []
        refused: list[str] = []
        total = 600
        killed = asyncio.Event()
        leader = await stream_leader(own_cluster, inbox.options.stream)

        async def appender(worker: int) -> None:
            for n in range(worker, total, 20):
                delivery_id = f"load-{n}"
                try:
                    if await inbox.append(incoming(delivery_id), received_at=1.0):
                        accepted.append(delivery_id)
                except StoreUnavailable:
                    refused.append(delivery_id)
                if n == total // 3 and not killed.is_set():
                    own_cluster.kill(leader)  # kill -9 the stream's leader, appends in flight
                    killed.set()

        started = time.monotonic()
        await asyncio.gather(*(appender(w) for w in range(20)))
        elapsed = time.monotonic() - started
        own_cluster.start_node(leader)
        claimed = await drain_ids(inbox)
        print(  # the measured numbers (pytest -s)
            f"\n{total} appends in {elapsed:.2f} s, {len(refused)} refused (503) around the kill of the leader,"
            f" {len(claimed) - len(accepted)} of them stored anyway (ambiguous timeouts)"
        )
        assert len(claimed) == len(set(claimed))  # each claimed (and settled) once
        assert set(accepted) <= set(claimed)  # nothing acknowledged is lost
        assert set(claimed) - set(accepted) <= set(refused)  # and nothing else appears
        assert len(accepted) + len(refused) == total
        assert len(accepted) > total // 2
        assert await inbox.depth() == 0
