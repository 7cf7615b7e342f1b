"""The release fold: duplicate- and order-safe, state only moves forward, content is the newest information."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.app.samples import release_payload
from ghingest.core.releases import (
    ReleaseChange,
    ReleaseRecord,
    ReleaseState,
    covered,
    covers,
    fold,
    rebuild,
    record_change,
    release_change,
)

T0, T1 = "2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z"


def change(seq: int, action: str, **kwargs: Any) -> ReleaseChange:
    payload = release_payload(action=action, release_id=7, **kwargs)
    return release_change(delivery_id=f"d{seq}", seq=seq, received_at=1000.0 + seq, payload=payload)


def fold_all(changes: list[ReleaseChange]) -> ReleaseRecord:
    record: ReleaseRecord | None = None
    for c in changes:
        record = fold(record, c)
    assert record is not None
    return record


def assert_same_whatever_the_order(changes: list[ReleaseChange]) -> ReleaseRecord:
    """Every order, and every order with every change applied twice, folds into one and the same record."""
    expected = fold_all(changes)
    for order in itertools.permutations(changes):
        assert fold_all(list(order)) == expected
        assert fold_all([*order, *order]) == expected
    assert rebuild(changes) == expected
    return expected


def test_created_published_edited_deleted() -> None:
    record = assert_same_whatever_the_order(
        [
            change(1, "created", draft=True, created_at=T0, published_at=None, body="draft notes"),
            change(2, "published", created_at=T0, published_at=T1, body="notes"),
            change(3, "edited", created_at=T0, published_at=T1, body="edited notes"),
            change(4, "deleted", created_at=T0, published_at=T1, body="edited notes"),
        ]
    )
    assert record.state is ReleaseState.DELETED
    assert record.content.body == "edited notes"
    assert [e.action for e in record.history] == ["created", "published", "edited", "deleted"]


def test_prereleased_then_released() -> None:
    record = assert_same_whatever_the_order(
        [
            change(1, "prereleased", prerelease=True, created_at=T0, published_at=T0, tag="v2.0.0-rc.1"),
            change(2, "released", prerelease=False, created_at=T0, published_at=T1, tag="v2.0.0"),
        ]
    )
    assert record.state is ReleaseState.PUBLISHED
    assert record.content.prerelease is False
    assert record.content.tag == "v2.0.0"


def test_draft_published_unpublished() -> None:
    record = assert_same_whatever_the_order(
        [
            change(1, "created", draft=True, created_at=T0, published_at=None),
            change(2, "published", created_at=T0, published_at=T1),
            change(3, "unpublished", created_at=T0, published_at=T1),
        ]
    )
    assert record.state is ReleaseState.UNPUBLISHED


def test_a_late_created_does_not_turn_a_published_release_back_into_a_draft() -> None:
    published = change(1, "published", created_at=T0, published_at=T1, name="Final name")
    late_created = change(2, "created", draft=True, created_at=T0, published_at=None, name="Draft name")
    record = fold_all([published, late_created])
    assert record.state is ReleaseState.PUBLISHED
    assert record.content.name == "Final name"  # its payload timestamp is older, whatever the receipt order
    assert record.content.draft is False


def test_deleted_is_final() -> None:
    deleted = change(1, "deleted", created_at=T0, published_at=T1)
    record = fold_all([deleted, change(2, "published", created_at=T0, published_at=T1)])
    assert record.state is ReleaseState.DELETED


def test_edits_with_equal_timestamps_are_ordered_by_receipt() -> None:
    first = change(1, "edited", created_at=T0, published_at=T1, body="first edit")
    second = change(2, "edited", created_at=T0, published_at=T1, body="second edit")
    assert fold_all([second, first]).content.body == "second edit"


def test_applying_a_delivery_twice_returns_the_same_record() -> None:
    c = change(1, "published")
    record = fold(None, c)
    assert fold(record, c) is record


actions = st.sampled_from(["created", "published", "released", "prereleased", "edited", "unpublished", "deleted"])
timestamps = st.sampled_from([T0, T1, "2024-05-03T00:00:00Z"])


@settings(max_examples=200, deadline=None)
@given(
    specs=st.lists(st.tuples(actions, timestamps, st.booleans(), st.text(max_size=20)), min_size=1, max_size=6),
    data=st.data(),
)
def test_any_lifecycle_folds_to_one_record_in_any_order_with_duplicates(
    specs: list[tuple[str, str, bool, str]], data: st.DataObject
) -> None:
    changes = [
        change(seq, action, created_at=T0, published_at=ts, draft=draft, body=body)
        for seq, (action, ts, draft, body) in enumerate(specs, start=1)
    ]
    expected = fold_all(changes)
    shuffled = data.draw(st.permutations(changes + data.draw(st.lists(st.sampled_from(changes), max_size=4))))
    assert fold_all(shuffled) == expected
    ranks = {"draft": 0, "published": 1, "unpublished": 2, "deleted": 3}
    assert ranks[expected.state] == max(ranks[c.implied_state] for c in changes)
    newest = max(changes, key=lambda c: c.order)
    assert expected.content == newest.content
    assert [e.delivery_id for e in expected.history] == [
        c.delivery_id for c in sorted(changes, key=lambda c: (c.order, c.delivery_id))
    ]


# --- sources: polled changes that a webhook change covers (docs/adr/0019-release-sources.md) ----------------------


def polled(seq: int, action: str, digest: str, **kwargs: Any) -> ReleaseChange:
    """A change as the poller makes it: a `poll:` delivery id, a payload with the API's release object."""
    payload = release_payload(action=action, release_id=7, **kwargs)
    payload = {"action": action, "release": payload["release"], "repository": payload["repository"]}
    return release_change(delivery_id=f"poll:7:{digest}", seq=seq, received_at=1000.0 + seq, payload=payload)


def record_all(changes: list[ReleaseChange]) -> tuple[ReleaseRecord, dict[str, ReleaseChange]]:
    """Record `changes` one at a time as the stores do (`record_change`): the record and the history's changes."""
    record: ReleaseRecord | None = None
    kept: dict[str, ReleaseChange] = {}
    for c in changes:
        recorded = record_change(record, kept, c)
        record, kept = recorded.record, dict(recorded.changes)
    assert record is not None
    return record, kept


def test_the_source_is_read_from_the_delivery_id() -> None:
    assert change(1, "published").source == "webhook"
    poll = polled(2, "published", "abc")
    assert poll.source == "poll"
    assert fold(None, poll).history[0].source == "poll"
    assert release_change(delivery_id="Poll:1", seq=1, received_at=0.0, payload=release_payload()).source == "webhook"


def test_a_poll_of_content_a_webhook_had_is_no_history_entry_in_either_order() -> None:
    webhook = change(1, "published", created_at=T0, published_at=T1)
    poll = polled(2, "published", "same", created_at=T0, published_at=T1)
    assert webhook.content == poll.content
    assert covers(webhook, poll)
    assert not covers(poll, webhook)
    for order in ([webhook, poll], [poll, webhook], [poll, webhook, poll, webhook]):
        record, kept = record_all(order)
        assert [(e.delivery_id, e.source) for e in record.history] == [("d1", "webhook")]
        assert set(kept) == {"d1"}
        assert record == fold(None, webhook) == rebuild(order)
    first = record_change(None, {}, poll)
    taken_out = record_change(first.record, first.changes, webhook)
    assert (taken_out.dropped, taken_out.covered) == ({poll.delivery_id}, False)
    after = record_change(taken_out.record, taken_out.changes, poll)
    assert after.covered
    assert after.record is taken_out.record  # nothing changed: no feed entry


def test_a_poll_of_content_no_webhook_had_is_an_entry_of_its_own() -> None:
    webhook = change(1, "published", created_at=T0, published_at=T1, body="notes")
    edited = polled(2, "edited", "edited", created_at=T0, published_at=T1, body="notes, edited on GitHub")
    record = assert_same_whatever_the_order([webhook, edited])
    assert [(e.action, e.source) for e in record.history] == [("published", "webhook"), ("edited", "poll")]
    assert record.content.body == "notes, edited on GitHub"
    assert record_all([edited, webhook])[0] == record_all([webhook, edited])[0] == record


def test_a_covered_poll_decides_neither_state_nor_content() -> None:
    """A webhook said A, then B; a poll that saw A (late) is covered: the content stays B."""
    a = change(1, "published", created_at=T0, published_at=T1, body="A")
    b = change(2, "edited", created_at=T0, published_at=T1, body="B")
    late = polled(3, "published", "a", created_at=T0, published_at=T1, body="A")
    for order in itertools.permutations([a, b, late]):
        record, _ = record_all(list(order))
        assert record.content.body == "B"
        assert [e.delivery_id for e in record.history] == ["d1", "d2"]


bodies = st.sampled_from(["A", "B", "C"])


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(st.tuples(st.booleans(), actions, timestamps, st.booleans(), bodies), min_size=1, max_size=7),
    data=st.data(),
)
def test_any_mix_of_webhook_and_poll_changes_records_to_one_release_in_any_order_with_duplicates(
    specs: list[tuple[bool, str, str, bool, str]], data: st.DataObject
) -> None:
    changes = []
    for seq, (is_poll, action, ts, draft, body) in enumerate(specs, start=1):
        fields = dict(created_at=T0, published_at=ts, draft=draft, body=body)
        if is_poll:  # the poller's actions; a digest of its own per change (two may see equal content)
            action = {"created": "created", "edited": "edited"}.get(action, "published")
            changes.append(polled(seq, action, f"{seq}", **fields))
        else:
            changes.append(change(seq, action, **fields))
    expected = rebuild(changes)
    shuffled = data.draw(st.permutations(changes + data.draw(st.lists(st.sampled_from(changes), max_size=4))))
    record, kept = record_all(shuffled)
    assert record == expected
    assert rebuild(shuffled) == expected
    # The history: every webhook change and each poll change whose content no webhook change had.
    webhook_contents = [c.content for c in changes if c.source == "webhook"]
    entries = [c for c in changes if c.source == "webhook" or c.content not in webhook_contents]
    assert [e.delivery_id for e in expected.history] == [
        c.delivery_id for c in sorted(entries, key=lambda c: (c.order, c.delivery_id))
    ]
    assert set(kept) == {c.delivery_id for c in entries}
    assert not covered(entries)
    # State and content are decided by the history's changes alone, as ADR 0003 says.
    ranks = {"draft": 0, "published": 1, "unpublished": 2, "deleted": 3}
    assert ranks[expected.state] == max(ranks[c.implied_state] for c in entries)
    assert expected.content == max(entries, key=lambda c: c.order).content
