"""The event log's and the overview's reads: each event's forwards and release, the filters by sender, destination,
forward status, time and delivery id, deliveries per hour, the inbox's oldest waiting delivery and the dead letters
of a period. Capability flags say what a backend cannot answer (`ReadCapabilities`, `InboxCapabilities`)."""

from __future__ import annotations

from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.routing import ForwardTarget
from ghingest.ports import EventQuery, ManualClock, ReleaseRef
from tests.contract.support import incoming, ingest
from tests.contract.test_forward_queue import attempt, claim

pytestmark = pytest.mark.needs("inbox", "store", "reads", "forwards", "forward_log")

CI = ForwardTarget("ci", "releases")
CHAT = ForwardTarget("chat", "chat-route")


def push(delivery_id: str, sender: str, repository: str = "acme/app") -> Any:
    payload = {"ref": "refs/heads/main", "repository": {"full_name": repository}, "sender": {"login": sender}}
    return incoming(delivery_id, event="push", payload=payload)


async def seeded(backend: Any, clock: ManualClock) -> float:
    """r1 (a release, forwarded to ci and chat), p2 (a push by bob, to ci), p3 (a push by carol, not forwarded),
    received an hour apart from the returned time; ci delivers r1 (200) and p2 dies (410), chat keeps r1 pending."""
    start = clock.now()
    deliveries = [
        incoming("r1", payload=release_payload(release_id=71, tag="v7.1", repository_name="acme/app")),
        push("p2", "bob"),
        push("p3", "carol"),
    ]
    await ingest(backend, deliveries, clock, forwards={"r1": [CI, CHAT], "p2": [CI]}, spacing=3600.0)
    jobs = {j.delivery_id: j for j in await claim(backend, "ci")}
    await backend.forwards.record_attempts(
        [
            attempt(clock, jobs["r1"], ForwardStatus.DELIVERED),
            attempt(clock, jobs["p2"], ForwardStatus.DEAD, code=410, error="HTTP 410"),
        ]
    )
    return start


async def ids(backend: Any, **filters: Any) -> list[str]:
    page = await backend.reads.list_events(EventQuery(**filters))
    return [view.record.delivery_id for view in page.items]


async def test_each_event_shows_its_forwards_per_destination_and_its_release(backend: Any, clock: ManualClock) -> None:
    await seeded(backend, clock)
    page = await backend.reads.list_events(EventQuery())
    views = {view.record.delivery_id: view for view in page.items}
    r1 = {(f.destination, f.status, f.status_code) for f in views["r1"].forwards}
    assert r1 == {("ci", ForwardStatus.DELIVERED, 200), ("chat", ForwardStatus.PENDING, None)}
    assert [(f.destination, f.status, f.status_code) for f in views["p2"].forwards] == [("ci", ForwardStatus.DEAD, 410)]
    assert views["p3"].forwards == ()
    assert views["r1"].release == ReleaseRef(71, "acme/app", "v7.1")
    assert views["p2"].release is None


async def test_the_sender_time_and_delivery_id_filters(backend: Any, clock: ManualClock) -> None:
    start = await seeded(backend, clock)
    assert await ids(backend, sender="bob") == ["p2"]
    assert await ids(backend, sender="nobody") == []
    assert await ids(backend, since=start + 3600) == ["p3", "p2"]
    assert await ids(backend, until=start + 3600) == ["r1"]
    assert await ids(backend, since=start + 1, until=start + 7200) == ["p2"]
    assert await ids(backend, delivery_id="p2") == ["p2"]
    assert await ids(backend, delivery_id="p2", sender="carol") == []
    assert await ids(backend, delivery_id="missing") == []
    first = await backend.reads.list_events(EventQuery(since=start, limit=1))
    assert [v.record.delivery_id for v in first.items] == ["p3"]
    second = await backend.reads.list_events(EventQuery(since=start, limit=1, cursor=first.next_cursor))
    assert [v.record.delivery_id for v in second.items] == ["p2"]


async def test_the_forward_filters(backend: Any, clock: ManualClock) -> None:
    if not backend.reads.capabilities.event_forward_filters:
        pytest.skip("this backend declares no forward filters (ReadCapabilities.event_forward_filters)")
    await seeded(backend, clock)
    assert await ids(backend, destination="ci") == ["p2", "r1"]
    assert await ids(backend, destination="chat") == ["r1"]
    assert await ids(backend, forward_status=ForwardStatus.DEAD) == ["p2"]
    assert await ids(backend, destination="chat", forward_status=ForwardStatus.PENDING) == ["r1"]
    assert await ids(backend, destination="chat", forward_status=ForwardStatus.DEAD) == []
    assert await ids(backend, destination="ci", sender="bob") == ["p2"]
    first = await backend.reads.list_events(EventQuery(destination="ci", limit=1))
    second = await backend.reads.list_events(EventQuery(destination="ci", limit=1, cursor=first.next_cursor))
    assert [v.record.delivery_id for v in (*first.items, *second.items)] == ["p2", "r1"]


async def test_deliveries_per_hour_by_outcome(backend: Any, clock: ManualClock) -> None:
    if not backend.reads.capabilities.activity:
        pytest.skip("this backend declares no hourly counts (ReadCapabilities.activity)")
    clock.advance(3600 - clock.now() % 3600)  # to an hour's start
    start = await seeded(backend, clock)
    bad = incoming("bad", payload={"action": "published"})  # a release without a release: fails
    await ingest(backend, [bad], clock)  # received 3 h after the start
    assert await backend.inbox.append(push("late", "dan"), received_at=clock.now()) is True  # waits
    hours = await backend.reads.deliveries_per_hour(since=start + 3600)
    # Behind a broker's inbox, the store records a delivery with its first outcome: one waiting is not counted.
    waiting = 1 if backend.inbox.capabilities.visible_on_receipt else 0
    assert [(h.hour - start, h.received, h.processed, h.failed, h.waiting) for h in hours] == [
        (3600.0, 1, 1, 0, 0),
        (7200.0, 1, 1, 0, 0),
        (10800.0, 1 + waiting, 0, 1, waiting),
    ]


async def test_the_oldest_waiting_delivery(backend: Any, clock: ManualClock) -> None:
    if not backend.inbox.capabilities.oldest_waiting:
        pytest.skip("this inbox does not say when its oldest waiting delivery came (InboxCapabilities)")
    assert await backend.inbox.oldest_waiting_at() is None
    first = clock.now()
    for delivery_id in ("w1", "w2"):
        assert await backend.inbox.append(push(delivery_id, "eve"), received_at=clock.now()) is True
        clock.advance(1)
    assert await backend.inbox.oldest_waiting_at() == first
    await ingest(backend, [], clock)  # processes both
    assert await backend.inbox.oldest_waiting_at() is None


async def test_dead_letters_since_a_time(backend: Any, clock: ManualClock) -> None:
    start = await seeded(backend, clock)
    assert await backend.forward_log.dead_lettered_since(start) == 1
    assert await backend.forward_log.dead_lettered_since(clock.now() + 1) == 0
