"""The Inbox contract: durable, deduplicated intake, claimed at least once with leases, settled by the worker."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from ghingest.core.errors import StoreUnavailable
from ghingest.ports import ManualClock, Settle, Settlement
from tests.contract.support import incoming, let_waiters_start

pytestmark = pytest.mark.needs("inbox")


async def append(backend: Any, clock: ManualClock, *ids: str) -> None:
    for delivery_id in ids:
        assert await backend.inbox.append(incoming(delivery_id), received_at=clock.now()) is True


def ids(claimed: Any) -> list[str]:
    return [c.delivery.delivery_id for c in claimed]


async def test_append_is_idempotent(backend: Any, clock: ManualClock) -> None:
    assert await backend.inbox.append(incoming("a"), received_at=clock.now()) is True
    assert await backend.inbox.append(incoming("a", hook_id="43"), received_at=clock.now()) is False
    assert await backend.inbox.depth() == 1
    assert ids(await backend.inbox.claim(limit=10, lease_seconds=60)) == ["a"]


async def test_concurrent_appends_all_land_and_one_of_the_same_id(backend: Any, clock: ManualClock) -> None:
    results = await asyncio.gather(
        *(backend.inbox.append(incoming(f"d-{i}"), received_at=clock.now()) for i in range(300))
    )
    assert all(results)
    same = await asyncio.gather(*(backend.inbox.append(incoming("same"), received_at=clock.now()) for _ in range(20)))
    assert same.count(True) == 1
    assert await backend.inbox.depth() == 301
    claimed = await backend.inbox.claim(limit=500, lease_seconds=60)
    assert sorted(ids(claimed)) == sorted([f"d-{i}" for i in range(300)] + ["same"])


async def test_claims_take_the_oldest_first_up_to_the_limit(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "c-0", "c-1", "c-2", "c-3", "c-4")
    assert ids(await backend.inbox.claim(limit=3, lease_seconds=60)) == ["c-0", "c-1", "c-2"]
    assert ids(await backend.inbox.claim(limit=10, lease_seconds=60)) == ["c-3", "c-4"]  # leases hide the others
    assert await backend.inbox.claim(limit=10, lease_seconds=60) == []


async def test_a_claimed_delivery_is_what_was_appended(backend: Any, clock: ManualClock) -> None:
    original = incoming("exact", hook_id="777", secret_index=2)
    await backend.inbox.append(original, received_at=123.5)
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
    d = claimed.delivery
    assert (d.delivery_id, d.event, d.hook_id, d.content_kind) == ("exact", "release", "777", original.content_kind)
    assert d.body == original.body
    assert dict(d.headers) == dict(original.headers)
    assert (d.secret_index, d.received_at, d.attempts) == (2, 123.5, 0)


@pytest.mark.needs("manual_clock")
async def test_a_lease_hides_a_delivery_until_it_runs_out(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "l-0", "l-1", "l-2")
    assert ids(await backend.inbox.claim(limit=2, lease_seconds=30)) == ["l-0", "l-1"]
    clock.advance(29)
    assert ids(await backend.inbox.claim(limit=10, lease_seconds=60)) == ["l-2"]
    clock.advance(2)
    again = await backend.inbox.claim(limit=10, lease_seconds=60)
    assert ids(again) == ["l-0", "l-1"]
    assert [c.delivery.attempts for c in again] == [0, 0]  # a lease that ran out is not an attempt


@pytest.mark.needs("manual_clock")
async def test_settled_done_or_failed_is_never_claimed_again(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "done", "failed", "open")
    done, failed, _ = await backend.inbox.claim(limit=10, lease_seconds=10)
    await backend.inbox.settle([Settlement(done.handle, Settle.DONE), Settlement(failed.handle, Settle.FAILED)])
    assert await backend.inbox.depth() == 1
    clock.advance(3600)
    assert ids(await backend.inbox.claim(limit=10, lease_seconds=60)) == ["open"]


@pytest.mark.needs("manual_clock")
async def test_a_retry_is_claimable_from_its_time_only(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "r")
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    await backend.inbox.settle([Settlement(claimed.handle, Settle.RETRY, retry_at=clock.now() + 60)])
    assert await backend.inbox.depth() == 1  # it still waits to be processed
    assert await backend.inbox.claim(limit=1, lease_seconds=10) == []
    clock.advance(59)
    assert await backend.inbox.claim(limit=1, lease_seconds=10) == []
    clock.advance(1)
    (again,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    assert (again.delivery.delivery_id, again.delivery.attempts) == ("r", 1)


@pytest.mark.needs("manual_clock")
async def test_extending_a_lease_keeps_the_delivery_hidden(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "slow")
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    clock.advance(8)
    await backend.inbox.extend([claimed.handle], lease_seconds=10)  # now hidden until 18 s
    clock.advance(9)
    assert await backend.inbox.claim(limit=1, lease_seconds=10) == []
    clock.advance(2)
    assert ids(await backend.inbox.claim(limit=1, lease_seconds=10)) == ["slow"]


@pytest.mark.needs("manual_clock")
async def test_a_stale_claim_or_a_second_settlement_changes_nothing(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "s")
    (first,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    clock.advance(11)
    (second,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    await backend.inbox.settle([Settlement(first.handle, Settle.DONE)])  # its lease ran out and it was claimed again
    await backend.inbox.extend([first.handle], lease_seconds=3600)
    await backend.inbox.settle([Settlement(second.handle, Settle.RETRY, retry_at=clock.now() + 5)])
    await backend.inbox.settle([Settlement(second.handle, Settle.DONE)])  # settled already
    assert await backend.inbox.depth() == 1
    clock.advance(5)
    (third,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    assert third.delivery.attempts == 1


async def test_requeue_makes_processed_deliveries_due_again_as_new(backend: Any, clock: ManualClock) -> None:
    if not backend.inbox.capabilities.requeue:
        pytest.skip("this inbox cannot requeue")
    await append(backend, clock, "q", "other")
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    await backend.inbox.settle([Settlement(claimed.handle, Settle.RETRY, retry_at=clock.now())])
    (again,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    assert again.delivery.attempts == 1
    (other,) = await backend.inbox.claim(limit=1, lease_seconds=10)
    await backend.inbox.settle([Settlement(again.handle, Settle.DONE), Settlement(other.handle, Settle.FAILED)])
    assert await backend.inbox.depth() == 0
    assert await backend.inbox.requeue([again.delivery, other.delivery]) == 2
    assert await backend.inbox.depth() == 2
    requeued = await backend.inbox.claim(limit=10, lease_seconds=10)
    assert [(c.delivery.delivery_id, c.delivery.attempts) for c in requeued] == [("q", 0), ("other", 0)]
    assert requeued[0].delivery.body == claimed.delivery.body


async def test_depth_counts_what_waits_to_be_processed(backend: Any, clock: ManualClock) -> None:
    assert await backend.inbox.depth() == 0
    await append(backend, clock, "w-0", "w-1", "w-2")
    assert await backend.inbox.depth() == 3
    first, *_ = await backend.inbox.claim(limit=2, lease_seconds=60)
    assert await backend.inbox.depth() == 3  # claimed is not processed
    await backend.inbox.settle([Settlement(first.handle, Settle.DONE)])
    assert await backend.inbox.depth() == 2


@pytest.mark.needs("exact_byte_budget")
async def test_claims_are_bounded_by_bytes(backend: Any, clock: ManualClock) -> None:
    sizes = {}
    for n in range(6):
        delivery = incoming(f"b-{n}")
        delivery = dataclasses.replace(delivery, body=delivery.body + b" " * (n * 1000))
        sizes[delivery.delivery_id] = len(delivery.body)
        await backend.inbox.append(delivery, received_at=clock.now())
    first = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=sizes["b-0"] + sizes["b-1"])
    assert ids(first) == ["b-0", "b-1"]  # the bodies before b-1 total less than the budget
    second = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=sizes["b-2"] + 1)
    assert ids(second) == ["b-2", "b-3"]  # b-3 is the one that takes the batch past it
    rest = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=sum(sizes.values()))
    assert ids(rest) == ["b-4", "b-5"]


async def test_a_claim_takes_at_least_one_delivery_whatever_the_budget(backend: Any, clock: ManualClock) -> None:
    await append(backend, clock, "big-0", "big-1")
    assert ids(await backend.inbox.claim(limit=10, lease_seconds=60, max_bytes=1)) == ["big-0"]


async def test_wait_for_work_wakes_when_a_delivery_is_appended(backend: Any, clock: ManualClock) -> None:
    waiter = asyncio.ensure_future(backend.inbox.wait_for_work(60.0))
    await let_waiters_start()
    assert not waiter.done()
    await append(backend, clock, "wake")
    await asyncio.wait_for(waiter, 10.0)


async def test_an_append_that_cannot_commit_raises_store_unavailable(backend: Any, clock: ManualClock) -> None:
    await backend.resources.close()
    with pytest.raises(StoreUnavailable):
        await backend.inbox.append(incoming("late"), received_at=clock.now())
