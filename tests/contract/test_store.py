"""The Store contract: outcomes recorded atomically; queries with filters and keyset pagination."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.errors import PayloadMismatch
from ghingest.core.processing import process, tolerant_event_record
from ghingest.core.states import DeliveryStatus
from ghingest.ports import EventQuery, Outcome, ReleaseQuery, ReprocessSelection
from tests.contract.conftest import Backend


async def ingest(backend: Backend, payloads: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Append (delivery id, event, payload) triples and process them all."""
    for delivery_id, event, payload in payloads:
        delivery = IncomingDelivery(
            delivery_id=delivery_id,
            event=event,
            hook_id=None,
            content_kind=ContentKind.JSON,
            headers={"x-github-event": event},
            body=orjson.dumps(payload),
            secret_index=0,
        )
        await backend.inbox.append(delivery, received_at=time.time())
    while claimed := await backend.inbox.claim(limit=50, lease_seconds=60):
        outcomes = []
        for d in claimed:
            try:
                outcomes.append(Outcome(delivery=d, processed=process(d)))
            except PayloadMismatch as exc:
                outcomes.append(Outcome(delivery=d, error=str(exc), fallback_event=tolerant_event_record(d)))
        await backend.store.record_outcomes(outcomes, now=time.time())


def test_a_release_delivery_becomes_an_event_and_a_release_with_history(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(
            backend,
            [
                ("d1", "release", release_payload(action="created", release_id=9, draft=True, published_at=None)),
                ("d2", "release", release_payload(action="published", release_id=9)),
            ],
        )
        view = await backend.store.get_release(9)
        assert view is not None
        assert view.record.state.value == "published"
        assert [(e.delivery_id, e.action) for e in view.record.history] == [("d1", "created"), ("d2", "published")]
        delivery = await backend.store.get_delivery("d2")
        assert delivery is not None
        assert delivery.status is DeliveryStatus.PROCESSED
        events = await backend.store.list_events(EventQuery(event="release"))
        assert [e.record.delivery_id for e in events.items] == ["d2", "d1"]

    asyncio.run(scenario())


def test_a_payload_mismatch_is_a_failed_delivery_with_its_reason(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(backend, [("bad", "release", {"action": "published", "repository": {"full_name": "a/b"}})])
        delivery = await backend.store.get_delivery("bad")
        assert delivery is not None
        assert delivery.status is DeliveryStatus.FAILED
        assert delivery.error is not None
        assert "release" in delivery.error
        failed = await backend.store.list_events(EventQuery(status="failed"))
        assert [(e.record.delivery_id, e.record.repository) for e in failed.items] == [("bad", "a/b")]

    asyncio.run(scenario())


def test_releases_paginate_newest_first_without_gaps_or_repeats(backend: Backend) -> None:
    async def scenario() -> None:
        payloads = [
            (
                f"r{i}",
                "release",
                release_payload(
                    release_id=100 + i,
                    tag=f"v{i}",
                    repository_name="acme/one" if i % 2 else "acme/two",
                    published_at=f"2024-05-{1 + i % 20:02d}T00:00:00Z",
                    prerelease=i % 3 == 0,
                ),
            )
            for i in range(45)
        ]
        await ingest(backend, payloads)
        seen: list[int] = []
        cursor = None
        while True:
            page = await backend.store.list_releases(ReleaseQuery(limit=10, cursor=cursor))
            seen += [v.record.release_id for v in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == list(range(100, 145))
        assert len(seen) == 45
        keys = [(v.record.content.published_at, v.record.release_id) for v in (await _all(backend)).items]
        assert keys == sorted(keys, reverse=True)

        one = await backend.store.list_releases(ReleaseQuery(repository="acme/one", limit=200))
        assert {v.record.content.repository for v in one.items} == {"acme/one"}
        assert len(one.items) == 22
        pre = await backend.store.list_releases(ReleaseQuery(prerelease=True, limit=200))
        assert len(pre.items) == 15
        assert all(v.record.content.prerelease for v in pre.items)
        since = await backend.store.list_releases(ReleaseQuery(since="2024-05-19T00:00:00Z", limit=200))
        assert all(v.record.content.published_at >= "2024-05-19" for v in since.items)  # type: ignore[operator]
        found = await backend.store.list_releases(ReleaseQuery(search="v17", limit=200))
        assert [v.record.content.tag for v in found.items] == ["v17"]

    asyncio.run(scenario())


async def _all(backend: Backend) -> Any:
    return await backend.store.list_releases(ReleaseQuery(limit=200))


def test_reprocess_selection_puts_deliveries_back(backend: Backend) -> None:
    async def scenario() -> None:
        await ingest(
            backend,
            [("ok", "release", release_payload(release_id=1)), ("bad", "release", {"action": "published"})],
        )
        assert await backend.store.mark_for_reprocess(ReprocessSelection(failed_only=True)) == 1
        assert await backend.inbox.depth() == 1
        assert await backend.store.mark_for_reprocess(ReprocessSelection(delivery_id="ok")) == 1
        assert await backend.store.mark_for_reprocess(ReprocessSelection(since=0.0)) == 2

    asyncio.run(scenario())


def test_change_feed_follows_processing_in_order(backend: Backend) -> None:
    async def scenario() -> None:
        start = await backend.feed.latest_seq()
        await ingest(backend, [("f1", "release", release_payload(release_id=5)), ("f2", "push", {"ref": "x"})])
        changes = await backend.feed.changes_since(start)
        assert [(c.kind, c.ref) for c in changes] == [("event", "f1"), ("release", "5"), ("event", "f2")]
        assert [c.seq for c in changes] == sorted(c.seq for c in changes)
        assert await backend.feed.changes_since(changes[-1].seq) == []

    asyncio.run(scenario())
