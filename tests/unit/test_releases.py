"""The release fold: duplicate- and order-safe, state only moves forward, content is the newest information."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.app.samples import release_payload
from ghingest.core.releases import ReleaseChange, ReleaseRecord, ReleaseState, fold, rebuild, release_change

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
