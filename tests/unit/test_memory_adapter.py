"""What the memory adapter does beyond the contract suites (tests/contract/ run it as the `memory` backend)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ghingest.adapters.memory import open_memory_backend
from ghingest.adapters.memory.signal import Signal, wait
from ghingest.core.errors import StoreUnavailable
from ghingest.core.pagination import InvalidCursor
from ghingest.core.processing import StoredDelivery
from ghingest.core.states import DeliveryStatus
from ghingest.ports import ManualClock
from tests.contract.support import incoming, outcome_of


def test_only_memory_urls_open() -> None:
    assert open_memory_backend("memory://").name == "memory"
    with pytest.raises(ValueError, match="memory://"):
        open_memory_backend("memory://somewhere")


def test_revocations_that_ran_out_are_purged() -> None:
    clock = ManualClock()
    backend = open_memory_backend(clock=clock)

    async def scenario() -> None:
        await backend.sessions.revoke("old", clock.now() + 10)
        clock.advance(11)
        await backend.sessions.revoke("new", clock.now() + 10)

    asyncio.run(scenario())
    assert len(backend.sessions) == 1


def test_a_cursor_of_another_memory_database_is_invalid() -> None:
    """Nothing persists: a live view's cursor from before a restart must not silently skip what came after it."""

    async def scenario() -> None:
        before, after = open_memory_backend(), open_memory_backend()
        with pytest.raises(InvalidCursor):
            await after.feed.changes_since(await before.feed.latest())

    asyncio.run(scenario())


def test_an_outcome_records_a_delivery_the_inbox_never_held() -> None:
    backend = open_memory_backend(clock=ManualClock())
    appended = incoming("elsewhere")
    delivery = StoredDelivery(
        seq=41, delivery_id="elsewhere", event="release", hook_id=None, content_kind=appended.content_kind,
        headers=appended.headers, body=appended.body, received_at=5.0, secret_index=0, attempts=2,
    )  # fmt: skip

    async def scenario() -> None:
        await backend.store.record_outcomes([outcome_of(delivery)])
        view = await backend.reads.get_delivery("elsewhere")
        assert view is not None
        # Numbered by this store (the broker's 41 decides nothing: it restarts with a new stream).
        assert (view.seq, view.status, view.attempts, view.body) == (1, DeliveryStatus.PROCESSED, 3, appended.body)
        assert await backend.inbox.depth() == 0  # recorded, not queued
        assert await backend.inbox.append(incoming("next"), received_at=6.0) is True
        (claimed,) = await backend.inbox.claim(limit=5, lease_seconds=1)
        assert claimed.delivery.seq == 2

    asyncio.run(scenario())


def test_a_notify_wakes_a_waiter_on_another_threads_loop() -> None:
    signal = Signal()
    registered = threading.Event()
    woken: list[bool] = []

    async def waiter() -> None:
        event = signal.register()
        registered.set()
        await wait(event, 30.0)
        woken.append(event.is_set())

    thread = threading.Thread(target=lambda: asyncio.run(waiter()))
    thread.start()
    assert registered.wait(10)
    signal.notify()
    thread.join(10)
    assert woken == [True]


def test_closing_wakes_waiters_and_refuses_work() -> None:
    backend = open_memory_backend(clock=ManualClock())

    async def scenario() -> None:
        waiter = asyncio.ensure_future(backend.feed.wait_for_change(await backend.feed.latest(), 60.0))
        for _ in range(5):
            await asyncio.sleep(0)
        await backend.resources.close()
        await asyncio.wait_for(waiter, 10.0)
        with pytest.raises(StoreUnavailable):
            await backend.feed.latest()

    asyncio.run(scenario())
