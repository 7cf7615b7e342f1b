"""The Store and Reads contract: outcomes recorded atomically (events, releases folded, failures with their error,
sightings), and the read side's queries with filters and keyset pagination."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.errors import StoreUnavailable
from ghingest.core.pagination import InvalidCursor
from ghingest.core.releases import ReleaseState
from ghingest.core.states import DeliveryStatus
from ghingest.ports import EventQuery, ManualClock, Outcome, ReleaseQuery, ReprocessSelection
from tests.contract.support import incoming, ingest, outcome_of, polled, process_all, settlement_of

pytestmark = pytest.mark.needs("inbox", "store", "reads")


def release(delivery_id: str, **fields: Any) -> Any:
    return incoming(delivery_id, payload=release_payload(**fields))


async def all_pages(fetch: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


# --- releases ---------------------------------------------------------------------------------------------------

LIFE = {  # one release's deliveries, each with its own payload time (so that no receipt order decides anything)
    "created": dict(action="created", draft=True, created_at="2024-05-01T10:00:00Z", published_at=None, tag="v2"),
    "published": dict(action="published", created_at="2024-05-01T10:00:00Z", published_at="2024-05-02T10:00:00Z",
                      tag="v2"),
    "edited": dict(action="edited", created_at="2024-05-01T10:00:00Z", published_at="2024-05-03T10:00:00Z",
                   tag="v2", name="Final name"),
}  # fmt: skip


async def test_a_release_folds_the_same_whatever_order_its_deliveries_come_in(backend: Any, clock: ManualClock) -> None:
    for n, order in enumerate(itertools.permutations(LIFE)):
        release_id = 500 + n
        deliveries = [release(f"p{n}-{action}", release_id=release_id, **LIFE[action]) for action in order]
        first_received = clock.now()
        await ingest(backend, deliveries, clock, spacing=1.0)
        view = await backend.reads.get_release(release_id)
        assert view is not None, order
        record = view.record
        assert record.state is ReleaseState.PUBLISHED, order
        assert (record.content.tag, record.content.name, record.content.draft) == ("v2", "Final name", False), order
        assert record.content.published_at == "2024-05-03T10:00:00Z", order
        assert [(e.delivery_id, e.action) for e in record.history] == [
            (f"p{n}-created", "created"), (f"p{n}-published", "published"), (f"p{n}-edited", "edited")
        ], order  # fmt: skip
        assert view.first_seen_at == first_received, order
        delivery = await backend.reads.get_delivery(f"p{n}-edited")
        assert delivery is not None
        assert (delivery.status, delivery.release_id) == (DeliveryStatus.PROCESSED, release_id)


async def test_deleted_is_final_and_a_late_created_changes_no_state(backend: Any, clock: ManualClock) -> None:
    await ingest(
        backend,
        [
            release("x-deleted", release_id=7, action="deleted", published_at="2024-05-02T00:00:00Z"),
            release("x-published", release_id=7, action="published", published_at="2024-05-02T00:00:00Z"),
            release("y-published", release_id=8, action="published"),
            release("y-created", release_id=8, action="created", draft=True, published_at=None),
        ],
        clock,
    )
    deleted, published = await backend.reads.get_release(7), await backend.reads.get_release(8)
    assert deleted is not None
    assert published is not None
    assert (deleted.record.state, published.record.state) == (ReleaseState.DELETED, ReleaseState.PUBLISHED)


async def test_recording_outcomes_again_changes_nothing(backend: Any, clock: ManualClock) -> None:
    outcomes = await ingest(
        backend,
        [release("d1", release_id=9, action="created", draft=True, published_at=None),
         release("d2", release_id=9, action="published"),
         incoming("d3", event="push", payload={"ref": "refs/heads/main", "repository": {"full_name": "a/b"}})],
        clock,
    )  # fmt: skip
    before = (
        await backend.reads.get_release(9),
        await backend.reads.list_events(EventQuery()),
        [await backend.reads.get_delivery(d) for d in ("d1", "d2", "d3")],
    )
    await backend.store.record_outcomes(outcomes)  # claimed again after a crash: recorded again
    await backend.store.record_outcomes(outcomes[1:2])
    after = (
        await backend.reads.get_release(9),
        await backend.reads.list_events(EventQuery()),
        [await backend.reads.get_delivery(d) for d in ("d1", "d2", "d3")],
    )
    assert after == before
    # An id delivered again is a duplicate, not a second delivery.
    assert await backend.inbox.append(incoming("d2"), received_at=clock.now()) is False
    assert len((await backend.reads.list_events(EventQuery())).items) == 3


# --- sources: polled releases (docs/adr/0019-release-sources.md) -----------------------------------------------

PUBLISHED = dict(action="published", created_at="2024-05-01T10:00:00Z", published_at="2024-05-02T10:00:00Z",
                 tag="v3", body="notes")  # fmt: skip


async def _history(backend: Any, release_id: int) -> list[tuple[str, str, str]]:
    view = await backend.reads.get_release(release_id)
    assert view is not None
    return [(e.delivery_id, e.action, e.source) for e in view.record.history]


async def test_a_poll_of_what_a_webhook_said_is_no_history_entry_whatever_the_order(
    backend: Any, clock: ManualClock
) -> None:
    """One release record, one history entry per real change: the webhook's, whether the poll came before it,
    after it, or in the same batch; the poll's delivery is processed but names no release."""
    await ingest(backend, [release("w-600", release_id=600, **PUBLISHED)], clock, spacing=1.0)
    await ingest(backend, [polled("same", release_id=600, **PUBLISHED)], clock, spacing=1.0)
    poll_first_at = clock.now()
    await ingest(backend, [polled("same", release_id=601, **PUBLISHED)], clock, spacing=1.0)
    await ingest(backend, [release("w-601", release_id=601, **PUBLISHED)], clock, spacing=1.0)
    outcomes = await ingest(
        backend, [polled("same", release_id=602, **PUBLISHED), release("w-602", release_id=602, **PUBLISHED)], clock
    )
    views = {}
    for release_id in (600, 601, 602):
        assert await _history(backend, release_id) == [(f"w-{release_id}", "published", "webhook")]
        view = await backend.reads.get_release(release_id)
        assert view is not None
        assert view.sources == {"webhook"}
        assert (view.record.state, view.record.content.body) == (ReleaseState.PUBLISHED, "notes")
        poll = await backend.reads.get_delivery(f"poll:{release_id}:same")
        assert poll is not None
        assert (poll.status, poll.release_id) == (DeliveryStatus.PROCESSED, None)
        assert poll.headers["x-ghingest-source"] == "poll"
        views[release_id] = view
    assert views[601].first_seen_at == poll_first_at  # the poll saw it first: when it was first seen counts it
    page = await backend.reads.list_releases(ReleaseQuery(limit=10))
    assert {v.record.release_id: v.sources for v in page.items} == {
        600: {"webhook"},
        601: {"webhook"},
        602: {"webhook"},
    }
    await backend.store.record_outcomes(outcomes)  # recorded again (a crash before the settle): nothing changes
    for release_id in (600, 601, 602):
        assert await backend.reads.get_release(release_id) == views[release_id]


async def test_a_poll_of_what_no_webhook_said_is_an_entry_of_its_own(backend: Any, clock: ManualClock) -> None:
    edited = PUBLISHED | dict(action="edited", body="notes, edited on GitHub")
    await ingest(backend, [release("w-610", release_id=610, **PUBLISHED)], clock, spacing=1.0)
    await ingest(backend, [polled("edited", release_id=610, **edited)], clock, spacing=1.0)
    await ingest(backend, [polled("only", release_id=611, **PUBLISHED | dict(tag="v4"))], clock, spacing=1.0)
    assert await _history(backend, 610) == [("w-610", "published", "webhook"), ("poll:610:edited", "edited", "poll")]
    both = await backend.reads.get_release(610)
    assert both is not None
    assert (both.sources, both.record.content.body) == ({"webhook", "poll"}, "notes, edited on GitHub")
    only = await backend.reads.get_release(611)
    assert only is not None
    assert only.sources == {"poll"}
    assert (await backend.reads.get_delivery("poll:610:edited")).release_id == 610
    page = await backend.reads.list_releases(ReleaseQuery(repository="octo-org/octo-repo", limit=10))
    assert {v.record.release_id: v.sources for v in page.items} == {610: {"webhook", "poll"}, 611: {"poll"}}
    assert all(v.record.history == () for v in page.items)  # a page carries no history, its sources all the same


async def test_a_webhook_takes_out_the_poll_it_covers_even_when_the_poll_came_first(
    backend: Any, clock: ManualClock
) -> None:
    """A poll seen before the webhook that says the same (a poller faster than GitHub's delivery, or processed in
    another order): the poll's entry is removed, the webhook's stays; an earlier poll of other content stays."""
    draft = dict(action="created", draft=True, created_at="2024-05-01T10:00:00Z", published_at=None, tag="v5")
    deliveries = [
        polled("draft", release_id=620, **draft),
        polled("published", release_id=620, **PUBLISHED | dict(tag="v5")),
        release("w-620", release_id=620, **PUBLISHED | dict(tag="v5")),
    ]
    received_at = clock.now()
    for delivery in deliveries:
        assert await backend.inbox.append(delivery, received_at=clock.now()) is True
        clock.advance(1.0)
    claimed = []
    while len(claimed) < len(deliveries):
        claimed += await backend.inbox.claim(limit=10, lease_seconds=60)
    by_id = {c.delivery.delivery_id: c for c in claimed}
    for delivery_id in ("poll:620:draft", "poll:620:published"):  # one batch each, in receipt order
        await backend.store.record_outcomes([outcome_of(by_id[delivery_id].delivery)])
    assert await _history(backend, 620) == [("poll:620:draft", "created", "poll"),
                                           ("poll:620:published", "published", "poll")]  # fmt: skip
    await backend.store.record_outcomes([outcome_of(by_id["w-620"].delivery)])
    outcomes = [outcome_of(c.delivery) for c in claimed]
    await backend.inbox.settle([settlement_of(c, o) for c, o in zip(claimed, outcomes, strict=True)])
    assert await _history(backend, 620) == [("poll:620:draft", "created", "poll"), ("w-620", "published", "webhook")]
    view = await backend.reads.get_release(620)
    assert view is not None
    assert (view.record.state, view.sources, view.first_seen_at) == (
        ReleaseState.PUBLISHED, {"webhook", "poll"}, received_at
    )  # fmt: skip
    assert (await backend.reads.get_delivery("poll:620:published")).release_id is None
    assert (await backend.reads.get_delivery("poll:620:draft")).release_id == 620


@pytest.mark.needs("feed")
async def test_a_covered_poll_does_not_say_its_release_changed(backend: Any, clock: ManualClock) -> None:
    await ingest(backend, [release("w-630", release_id=630, **PUBLISHED)], clock)
    start = await backend.feed.latest()
    await ingest(backend, [polled("same", release_id=630, **PUBLISHED)], clock)
    changes = await backend.feed.changes_since(start)
    assert [(c.kind, c.ref) for c in changes] == [("event", "poll:630:same")]
    await ingest(backend, [polled("new", release_id=630, **PUBLISHED | dict(action="edited", body="new"))], clock)
    changes = await backend.feed.changes_since(changes[-1].cursor)
    assert [(c.kind, c.ref) for c in changes] == [("event", "poll:630:new"), ("release", "630")]


# --- failures ---------------------------------------------------------------------------------------------------


async def test_a_payload_mismatch_is_a_failed_delivery_with_its_reason(backend: Any, clock: ManualClock) -> None:
    await ingest(backend, [incoming("bad", payload={"action": "published", "repository": {"full_name": "a/b"}})], clock)
    delivery = await backend.reads.get_delivery("bad")
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert delivery.error is not None
    assert "release" in delivery.error
    failed = await backend.reads.list_events(EventQuery(status="failed"))
    assert [(e.record.delivery_id, e.record.repository, e.error) for e in failed.items] == [
        ("bad", "a/b", delivery.error)
    ]
    assert (await backend.reads.list_events(EventQuery(status="processed"))).items == []


async def test_a_retried_outcome_shows_its_error_and_attempts(backend: Any, clock: ManualClock) -> None:
    await backend.inbox.append(incoming("later"), received_at=clock.now())
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
    await backend.store.record_outcomes([Outcome(claimed.delivery, error="boom", retry_at=clock.now() + 60)])
    delivery = await backend.reads.get_delivery("later")
    assert delivery is not None
    assert (delivery.status, delivery.attempts, delivery.error) == (DeliveryStatus.RECEIVED, 1, "boom")


# --- events -----------------------------------------------------------------------------------------------------


def _event(n: int) -> Any:
    repository = {"full_name": "acme/one" if n % 2 else "acme/two"}
    if n % 3 == 0:
        return incoming(f"e{n:02d}", payload=release_payload(release_id=n, repository_name=repository["full_name"]))
    if n % 3 == 1:
        action = "opened" if n % 4 == 1 else "closed"
        return incoming(f"e{n:02d}", event="issues", payload={"action": action, "issue": {"number": n},
                                                               "repository": repository})  # fmt: skip
    return incoming(f"e{n:02d}", event="push", payload={"ref": "refs/heads/main", "repository": repository})


async def test_events_come_newest_first_in_keyset_pages_and_filter(backend: Any, clock: ManualClock) -> None:
    deliveries = [_event(n) for n in range(23)]
    await ingest(backend, deliveries, clock)
    everything = await all_pages(lambda cursor: backend.reads.list_events(EventQuery(limit=5, cursor=cursor)))
    assert [e.record.delivery_id for e in everything] == [d.delivery_id for d in reversed(deliveries)]
    assert [e.seq for e in everything] == sorted((e.seq for e in everything), reverse=True)
    first = await backend.reads.list_events(EventQuery(limit=5))
    assert len(first.items) == 5
    assert first.next_cursor is not None

    async def ids(**filters: Any) -> list[str]:
        page = await backend.reads.list_events(EventQuery(limit=200, **filters))
        return [e.record.delivery_id for e in page.items]

    def expected(keep: Any) -> list[str]:
        return [d.delivery_id for n, d in reversed(list(enumerate(deliveries))) if keep(n)]

    assert await ids(event="issues") == expected(lambda n: n % 3 == 1)
    assert await ids(event="issues", action="opened") == expected(lambda n: n % 3 == 1 and n % 4 == 1)
    assert await ids(repository="acme/one", event="push") == expected(lambda n: n % 2 and n % 3 == 2)
    assert await ids(status="processed") == expected(lambda n: True)
    assert await ids(event="deployment") == []
    paged = await all_pages(lambda c: backend.reads.list_events(EventQuery(event="release", limit=2, cursor=c)))
    assert [e.record.delivery_id for e in paged] == expected(lambda n: n % 3 == 0)
    with pytest.raises(InvalidCursor):
        await backend.reads.list_events(EventQuery(cursor="not a cursor"))


# --- release queries --------------------------------------------------------------------------------------------


async def _releases(backend: Any, clock: ManualClock, count: int = 30) -> None:
    await ingest(
        backend,
        [
            release(
                f"r{i}",
                release_id=100 + i,
                tag=f"v{i}",
                name=f"Release {i}" + (" — the émoji edition" if i == 7 else ""),
                repository_name="acme/one" if i % 2 else "acme/two" if i % 5 else "other/acme-tools",
                published_at=f"2024-05-{1 + i % 20:02d}T00:00:00Z",
                prerelease=i % 3 == 0,
            )
            for i in range(count)
        ],
        clock,
    )


async def test_releases_come_newest_first_in_keyset_pages_and_filter(backend: Any, clock: ManualClock) -> None:
    await _releases(backend, clock)
    seen = await all_pages(lambda cursor: backend.reads.list_releases(ReleaseQuery(limit=7, cursor=cursor)))
    assert sorted(v.record.release_id for v in seen) == list(range(100, 130))  # no gaps, no repeats
    keys = [(v.record.content.published_at, v.record.release_id) for v in seen]
    assert keys == sorted(keys, reverse=True)  # ties on time are broken by id, newest first

    async def query(**filters: Any) -> list[Any]:
        return list((await backend.reads.list_releases(ReleaseQuery(limit=200, **filters))).items)

    one = await query(repository="acme/one")
    assert {v.record.content.repository for v in one} == {"acme/one"}
    assert len(one) == 15
    pre = await query(prerelease=True)
    assert len(pre) == 10
    assert all(v.record.content.prerelease for v in pre)
    assert len(await query(prerelease=False)) == 20
    since = await query(since="2024-05-19T00:00:00Z")
    assert sorted(v.record.release_id for v in since) == [118, 119]
    until = await query(until="2024-05-03T00:00:00Z")
    assert sorted(v.record.release_id for v in until) == [100, 101, 120, 121]
    assert len(await query(state="published")) == 30
    assert await query(state="deleted") == []
    paged = await all_pages(
        lambda c: backend.reads.list_releases(ReleaseQuery(repository="acme/one", prerelease=False, limit=3, cursor=c))
    )
    assert [v.record.release_id for v in paged] == [v.record.release_id for v in one if not v.record.content.prerelease]
    with pytest.raises(InvalidCursor):
        await backend.reads.list_releases(ReleaseQuery(cursor="bm90IGEgY3Vyc29y"))


async def test_release_search(backend: Any, clock: ManualClock) -> None:
    if not backend.reads.capabilities.search:
        pytest.skip("this read side has no search")
    await _releases(backend, clock)

    async def tags(text: str, **filters: Any) -> list[str | None]:
        page = await backend.reads.list_releases(ReleaseQuery(search=text, limit=200, **filters))
        return [v.record.content.tag for v in page.items]

    assert await tags("v17") == ["v17"]
    assert await tags("release 17") == ["v17"]  # every word, in any of tag, name and notes
    assert sorted(await tags("RELEASE 2")) == [
        "v2",
        "v20",
        "v21",
        "v22",
        "v23",
        "v24",
        "v25",
        "v26",
        "v27",
        "v28",
        "v29",
    ]
    assert await tags("emoji") == ["v7"]  # accents folded
    assert await tags("v1", repository="acme/one") == ["v19", "v17", "v15", "v13", "v11", "v1"]  # the last as a prefix
    assert await tags("nothing-like-this") == []


async def test_repositories_newest_release_and_releases_per_day(backend: Any, clock: ManualClock) -> None:
    assert await backend.reads.newest_release_at() is None
    await _releases(backend, clock)
    assert await backend.reads.list_repositories("acme", limit=2) == ["acme/one", "acme/two"]  # starting with it first
    assert await backend.reads.list_repositories("acme", limit=1) == ["acme/one"]
    assert await backend.reads.list_repositories("") == ["acme/one", "acme/two", "other/acme-tools"]
    assert await backend.reads.list_repositories("zzz") == []
    if backend.reads.capabilities.repository_contains:
        assert await backend.reads.list_repositories("acme-t") == ["other/acme-tools"]
        assert await backend.reads.list_repositories("acme", limit=20) == ["acme/one", "acme/two", "other/acme-tools"]
    assert await backend.reads.newest_release_at() == "2024-05-20T00:00:00Z"
    assert await backend.reads.newest_release_at(repository="other/acme-tools") == "2024-05-11T00:00:00Z"
    assert await backend.reads.newest_release_at(repository="nobody/none") is None
    if backend.reads.capabilities.release_chart:
        days = await backend.reads.count_releases_by_day(since="2024-05-18T00:00:00Z")
        assert dict(days) == {"2024-05-18": 1, "2024-05-19": 1, "2024-05-20": 1}
        days = await backend.reads.count_releases_by_day(since="2024-05-01T00:00:00Z", repository="acme/one")
        assert sum(days.values()) == 15
        assert days["2024-05-02"] == 2  # releases 101 and 121


# --- deliveries -------------------------------------------------------------------------------------------------


async def test_a_delivery_shows_its_sightings_and_its_release(backend: Any, clock: ManualClock) -> None:
    original = release("seen", release_id=77)
    assert await backend.inbox.append(original, received_at=clock.now()) is True
    first_at = clock.now() + 1
    for hook_id, body, at in (
        ("2", original.body, first_at),
        ("2", b"{}", first_at + 1),
        ("3", original.body, first_at + 2),
    ):
        clock.advance(1)
        duplicate = incoming("seen", hook_id=hook_id, body=body, secret_index=0)
        assert await backend.inbox.append(duplicate, received_at=at) is False
        await backend.store.record_sighting(duplicate, received_at=at)
    received = await backend.reads.get_delivery("seen")
    on_receipt = backend.inbox.capabilities.visible_on_receipt
    if on_receipt:
        assert received is not None
        assert (received.status, received.release_id, received.processed_at) == (DeliveryStatus.RECEIVED, None, None)
    else:  # a broker's inbox: the store records the delivery with its first outcome
        assert received is None
    await ingest(backend, [], clock)
    view = await backend.reads.get_delivery("seen")
    assert view is not None
    assert (view.status, view.attempts, view.error, view.release_id) == (DeliveryStatus.PROCESSED, 1, None, 77)
    assert (view.hook_id, view.secret_index, view.body, view.event) == ("42", 1, original.body, "release")
    assert view.content_kind == "json"
    assert dict(view.headers) == dict(original.headers)
    assert view.processed_at == clock.now()
    # Behind a broker's inbox the copies came before the delivery was recorded: whether their bodies were the same
    # is not known (None), never guessed.
    assert [(s.hook_id, s.count, s.same_body, s.first_at, s.last_at, s.secret_index) for s in view.sightings] == [
        ("2", 2, False if on_receipt else None, first_at, first_at + 1, 0),
        ("3", 1, True if on_receipt else None, first_at + 2, first_at + 2, 0),
    ]
    assert await backend.reads.get_delivery("never") is None
    assert await backend.reads.get_release(12345) is None


async def test_hooks_seen_names_the_recorded_deliverys_hook_and_every_sightings(
    backend: Any, clock: ManualClock
) -> None:
    """Per delivery id, the hooks that delivered it (docs/adr/0010-dedupe-key.md): the recorded delivery's `hook_id`
    and its sightings', `''` for a request that named no hook."""
    for delivery in (release("by-42", release_id=1), incoming("no-hook", hook_id=None)):
        assert await backend.inbox.append(delivery, received_at=clock.now()) is True
    for copy in (incoming("by-42", hook_id="7"), incoming("by-42", hook_id=None), incoming("no-hook", hook_id="7")):
        assert await backend.inbox.append(copy, received_at=clock.now()) is False
        await backend.store.record_sighting(copy, received_at=clock.now())
    everything = {"by-42": frozenset({"42", "7", ""}), "no-hook": frozenset({"", "7"})}
    asked = ["no-hook", "never", "by-42", "by-42"]
    if backend.inbox.capabilities.visible_on_receipt:
        assert await backend.reads.hooks_seen(asked) == everything
    else:  # a broker's inbox: the deliveries are recorded with their first outcomes, their sightings already are
        assert await backend.reads.hooks_seen(asked) == {"by-42": frozenset({"7", ""}), "no-hook": frozenset({"7"})}
    await ingest(backend, [], clock)
    assert await backend.reads.hooks_seen(asked) == everything
    assert await backend.reads.hooks_seen([]) == {}


async def test_hooks_seen_answers_many_ids_at_once(backend: Any, clock: ManualClock) -> None:
    recorded = [f"many-{n:03d}" for n in range(105)]
    for delivery_id in recorded:
        assert await backend.inbox.append(incoming(delivery_id), received_at=clock.now()) is True
    for delivery_id in recorded[::20]:
        copy = incoming(delivery_id, hook_id="9")
        assert await backend.inbox.append(copy, received_at=clock.now()) is False
        await backend.store.record_sighting(copy, received_at=clock.now())
    if not backend.inbox.capabilities.visible_on_receipt:
        await process_all(backend)
    asked = [f"unknown-{n}" for n in range(600)] + recorded  # past any backend's chunk of ids
    seen = await backend.reads.hooks_seen(asked)
    assert seen == {i: frozenset({"42", "9"} if n % 20 == 0 else {"42"}) for n, i in enumerate(recorded)}


async def test_deliveries_to_reprocess_come_oldest_first_in_pages(backend: Any, clock: ManualClock) -> None:
    good = [release(f"g{i}", release_id=i) for i in range(3)]
    bad = [incoming(f"b{i}", payload={"action": "published"}) for i in range(2)]
    await ingest(backend, [good[0], bad[0], good[1], bad[1], good[2]], clock, spacing=10.0)

    async def selected(selection: ReprocessSelection, limit: int = 2) -> list[Any]:
        return await all_pages(lambda after: backend.reads.deliveries_to_reprocess(selection, after=after, limit=limit))

    everything = await selected(ReprocessSelection())
    assert [d.delivery_id for d in everything] == ["g0", "b0", "g1", "b1", "g2"]
    assert everything[1].body == bad[0].body
    assert dict(everything[1].headers) == dict(bad[0].headers)
    failed = await selected(ReprocessSelection(failed_only=True), limit=1)
    assert [d.delivery_id for d in failed] == ["b0", "b1"]
    assert [d.delivery_id for d in await selected(ReprocessSelection(delivery_id="g1"))] == ["g1"]
    since = everything[3].received_at
    assert [d.delivery_id for d in await selected(ReprocessSelection(since=since))] == ["b1", "g2"]
    if backend.inbox.capabilities.requeue:
        assert await backend.inbox.requeue(failed) == 2
        assert await backend.inbox.depth() == 2
        claimed = await backend.inbox.claim(limit=10, lease_seconds=60)
        assert [(c.delivery.delivery_id, c.delivery.attempts) for c in claimed] == [("b0", 0), ("b1", 0)]


async def test_the_store_is_ready_until_it_is_closed(backend: Any, clock: ManualClock) -> None:
    await backend.reads.ping()
    await backend.store.ping()
    await backend.resources.close()
    with pytest.raises(StoreUnavailable):
        await backend.store.ping()
    with pytest.raises(StoreUnavailable):
        await backend.reads.ping()


async def test_a_processed_delivery_shows_what_the_inbox_held(backend: Any, clock: ManualClock) -> None:
    """(A store beside another inbox, a broker, records the raw delivery with its outcome.)"""
    await backend.inbox.append(release("held", release_id=3), received_at=clock.now())
    (claimed,) = await backend.inbox.claim(limit=1, lease_seconds=60)
    await backend.store.record_outcomes([outcome_of(claimed.delivery)])
    view = await backend.reads.get_delivery("held")
    assert view is not None
    assert (view.seq, view.status, view.body) == (claimed.delivery.seq, DeliveryStatus.PROCESSED, claimed.delivery.body)


# --- behind a broker's inbox ------------------------------------------------------------------------------------


def brokered(delivery_id: str, broker_seq: int, clock: ManualClock, **fields: Any) -> Any:
    """A delivery as a broker's inbox hands it out: numbered by the broker, never appended to this store."""
    from ghingest.core.processing import StoredDelivery

    d = release(delivery_id, **fields)
    return StoredDelivery(broker_seq, d.delivery_id, d.event, d.hook_id, d.content_kind, d.headers, d.body,
                          clock.now(), d.secret_index)  # fmt: skip


@pytest.mark.needs("forwards", "forward_log")
async def test_a_store_behind_a_brokers_inbox_knows_deliveries_by_id_not_by_the_brokers_number(
    backend: Any, clock: ManualClock
) -> None:
    """The raw delivery is recorded with its first outcome; the broker's numbers (which restart with a new stream,
    and change when a delivery is requeued or appended again after the duplicate window) decide nothing."""
    from ghingest.core.routing import ForwardTarget

    if not backend.store.capabilities.foreign_inbox:
        pytest.skip("this store keeps its own inbox")
    own = release("own-inbox", release_id=301, tag="v1")
    assert await backend.inbox.append(own, received_at=clock.now()) is True
    await process_all(backend)
    own_seq = (await backend.reads.get_delivery("own-inbox")).seq
    ci = (ForwardTarget("ci", "releases"),)

    first = brokered("from-broker", own_seq, clock, release_id=302, tag="v2")  # a number this store already uses
    await backend.store.record_outcomes([outcome_of(first, ci)])
    view = await backend.reads.get_delivery("from-broker")
    assert view is not None
    assert (view.status, view.body, view.hook_id) == (DeliveryStatus.PROCESSED, first.body, "42")
    assert view.release_id == 302
    unchanged = await backend.reads.get_delivery("own-inbox")
    assert (unchanged.seq, unchanged.release_id, unchanged.body) == (own_seq, 301, own.body)

    again = brokered("from-broker", 10**12, clock, release_id=302, tag="v2")  # requeued: a new broker number
    await backend.store.record_outcomes([outcome_of(again, ci)])
    events = await all_pages(lambda c: backend.reads.list_events(EventQuery(cursor=c)))
    assert sorted(e.record.delivery_id for e in events) == ["from-broker", "own-inbox"]
    release_view = await backend.reads.get_release(302)
    assert [h.delivery_id for h in release_view.record.history] == ["from-broker"]
    assert len(await backend.forward_log.forwards_of("from-broker")) == 1
    assert (await backend.reads.get_delivery("from-broker")).seq == view.seq
