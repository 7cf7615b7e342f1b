"""The Inbox contract: durable, deduplicated intake, claimed at least once."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest

from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.errors import StoreUnavailable
from ghingest.core.processing import process
from ghingest.ports import Outcome
from tests.contract.conftest import Backend


def incoming(delivery_id: str, *, release_id: int = 1, event: str = "release") -> IncomingDelivery:
    body = orjson.dumps(release_payload(release_id=release_id))
    return IncomingDelivery(
        delivery_id=delivery_id,
        event=event,
        hook_id="42",
        content_kind=ContentKind.JSON,
        headers={"x-github-delivery": delivery_id, "x-github-event": event, "content-type": "application/json"},
        body=body,
        secret_index=1,
    )


def test_append_is_idempotent(backend: Backend) -> None:
    async def scenario() -> None:
        assert await backend.inbox.append(incoming("a"), received_at=time.time()) is True
        assert await backend.inbox.append(incoming("a"), received_at=time.time()) is False
        assert await backend.inbox.depth() == 1

    asyncio.run(scenario())


def test_concurrent_appends_share_commits_and_all_land(backend: Backend) -> None:
    async def scenario() -> None:
        results = await asyncio.gather(
            *(backend.inbox.append(incoming(f"d-{i}"), received_at=time.time()) for i in range(300))
        )
        assert all(results)
        assert await backend.inbox.depth() == 300

    commits_before = backend.database.writer.commits
    asyncio.run(scenario())
    assert backend.database.writer.commits - commits_before < 300  # group commit batched them


def test_claim_hides_claimed_deliveries_until_their_lease_ends(backend: Backend) -> None:
    async def scenario() -> None:
        for i in range(5):
            await backend.inbox.append(incoming(f"c-{i}"), received_at=time.time())
        first = await backend.inbox.claim(limit=3, lease_seconds=0.3)
        assert [d.delivery_id for d in first] == ["c-0", "c-1", "c-2"]
        second = await backend.inbox.claim(limit=10, lease_seconds=60)
        assert [d.delivery_id for d in second] == ["c-3", "c-4"]
        assert await backend.inbox.claim(limit=10, lease_seconds=60) == []
        await asyncio.sleep(0.35)  # the lease itself is what is under test
        again = await backend.inbox.claim(limit=10, lease_seconds=60)
        assert [d.delivery_id for d in again] == ["c-0", "c-1", "c-2"]

    asyncio.run(scenario())


def test_claimed_delivery_keeps_exact_headers_and_body(backend: Backend) -> None:
    async def scenario() -> None:
        original = incoming("exact")
        await backend.inbox.append(original, received_at=123.5)
        (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
        assert claimed.body == original.body
        assert claimed.headers == original.headers
        assert (claimed.secret_index, claimed.received_at, claimed.attempts) == (1, 123.5, 0)

    asyncio.run(scenario())


def test_processed_deliveries_are_not_claimed_again(backend: Backend) -> None:
    async def scenario() -> None:
        await backend.inbox.append(incoming("p"), received_at=time.time())
        (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=0.01)
        await backend.store.record_outcomes([Outcome(delivery=claimed, processed=process(claimed))], now=time.time())
        await asyncio.sleep(0.02)
        assert await backend.inbox.claim(limit=10, lease_seconds=60) == []
        assert await backend.inbox.depth() == 0

    asyncio.run(scenario())


def test_a_retry_waits_for_its_time(backend: Backend) -> None:
    async def scenario() -> None:
        await backend.inbox.append(incoming("r"), received_at=time.time())
        (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
        await backend.store.record_outcomes(
            [Outcome(delivery=claimed, error="boom", retry_at=time.time() + 0.2)], now=time.time()
        )
        assert await backend.inbox.claim(limit=1, lease_seconds=60) == []
        await asyncio.sleep(0.25)
        (again,) = await backend.inbox.claim(limit=1, lease_seconds=60)
        assert again.attempts == 1

    asyncio.run(scenario())


def test_append_after_close_is_unavailable_not_acknowledged(backend: Backend) -> None:
    backend.database.writer.close()

    async def scenario() -> None:
        with pytest.raises(StoreUnavailable):
            await backend.inbox.append(incoming("late"), received_at=time.time())

    asyncio.run(scenario())


def test_claims_are_bounded_by_bytes_and_take_at_least_one(backend: Backend) -> None:
    async def scenario() -> None:
        sizes = {}
        for n in range(6):
            delivery = incoming(f"b-{n}", release_id=n)
            delivery = dataclasses.replace(delivery, body=delivery.body + b" " * (n * 1000))
            sizes[delivery.delivery_id] = len(delivery.body)
            await backend.inbox.append(delivery, received_at=time.time())
        first = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=sizes["b-0"] + sizes["b-1"])
        assert [d.delivery_id for d in first] == ["b-0", "b-1"]  # the bodies before b-1 total less than the budget
        second = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=1)
        assert [d.delivery_id for d in second] == ["b-2"]  # always one, however small the budget
        rest = await backend.inbox.claim(limit=100, lease_seconds=60, max_bytes=sum(sizes.values()))
        assert [d.delivery_id for d in rest] == ["b-3", "b-4", "b-5"]

    asyncio.run(scenario())
