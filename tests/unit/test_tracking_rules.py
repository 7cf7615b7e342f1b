"""core.tracking: what a polled release becomes, which releases changed, and when each repository is due."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghingest.core import sources, tracking
from ghingest.core.processing import at_receipt, process
from ghingest.core.tracking import InvalidRepositoryName

REPO = {"id": 7, "full_name": "Acme/Widgets", "name": "Widgets", "owner": {"login": "Acme"}}


def release(ident: int = 1, **fields):
    base = {"id": ident, "tag_name": f"v{ident}", "name": f"R{ident}", "body": "notes", "draft": False,
            "prerelease": False, "created_at": "2026-01-01T00:00:00Z", "published_at": "2026-01-02T00:00:00Z",
            "html_url": f"https://github.com/Acme/Widgets/releases/v{ident}",
            "author": {"login": "octo", "avatar_url": "https://a/octo"}}  # fmt: skip
    return {**base, **fields}


def test_repository_names_are_checked_and_keyed_in_lower_case():
    assert tracking.repository_key("Acme/Widgets") == "acme/widgets"
    assert tracking.repository_key("https://github.com/acme/widgets/") == "acme/widgets"
    for bad in ("acme", "acme/", "/x", "a/b/c", "acme/..", "-x/y", "acme/wid gets", "a" * 40 + "/x"):
        with pytest.raises(InvalidRepositoryName):
            tracking.repository_key(bad)


def test_a_first_poll_brings_every_release_and_a_second_only_what_changed():
    changes, known = tracking.changed_releases([release(1), release(2, draft=True)], repository=REPO, known={})
    assert [(c.release_id, c.action) for c in changes] == [(1, "published"), (2, "created")]
    again, _ = tracking.changed_releases([release(1), release(2, draft=True)], repository=REPO, known=known)
    assert again == []
    edited, known2 = tracking.changed_releases([release(1, body="fixed"), release(2, draft=True)],
                                               repository=REPO, known=known)  # fmt: skip
    assert [(c.release_id, c.action) for c in edited] == [(1, "edited")]
    assert known2[2] == known[2]
    assert known2[1] != known[1]


def test_items_that_are_not_releases_are_skipped():
    changes, known = tracking.changed_releases([None, {"id": "1"}, {"id": -1}, {"id": True}, release(3)],
                                               repository=REPO, known={})  # fmt: skip
    assert [c.release_id for c in changes] == [3]
    assert list(known) == [3]
    assert tracking.changed_releases({"message": "Not Found"}, repository=REPO, known={}) == ([], {})


def test_a_polled_release_is_a_release_delivery_the_pipeline_processes_as_polled():
    (change,) = tracking.changed_releases([release(5)], repository=REPO, known={})[0]
    d = change.delivery
    assert d.delivery_id == f"poll:5:{change.digest}"
    assert sources.is_polled(d.delivery_id)
    assert d.headers[sources.SOURCE_HEADER] == "poll"
    assert d.secret_index == tracking.NOT_SIGNED
    # its id fits the store's delivery ids (<= 128 characters of letters, digits, '.', '_', ':', '-')
    assert len(d.delivery_id) <= 128
    assert d.delivery_id.replace(":", "").isalnum()
    processed = process(at_receipt(d, seq=1, received_at=1.0))
    assert processed.release is not None
    assert processed.release.content.repository == "Acme/Widgets"
    assert processed.release.content.tag == "v5"
    assert processed.release.action == "published"
    assert orjson.loads(d.body)["repository"]["full_name"] == "Acme/Widgets"


def test_the_same_content_always_makes_the_same_delivery_id():
    a = tracking.changed_releases([release(5)], repository=REPO, known={})[0][0].delivery.delivery_id
    b = tracking.changed_releases([release(5)], repository=REPO, known={})[0][0].delivery.delivery_id
    c = tracking.changed_releases([release(5, name="other")], repository=REPO, known={})[0][0].delivery.delivery_id
    assert a == b != c


@given(keys=st.lists(st.text("abcdefghij", min_size=1, max_size=8), min_size=50, max_size=200, unique=True))
def test_first_polls_spread_over_the_interval(keys):
    due = [tracking.first_poll_at(k, now=0.0, interval=600.0) for k in keys]
    assert all(0 <= t < 600 for t in due)
    halves = sum(1 for t in due if t < 300)
    assert 0.2 * len(keys) < halves < 0.8 * len(keys)


@given(previous=st.floats(0, 10_000), now=st.floats(0, 100_000))
def test_the_next_poll_keeps_the_slot_and_is_never_in_the_past(previous, now):
    due = tracking.next_poll_at(previous, now=now, interval=600.0)
    assert due > now or due == previous + 600.0 > now
    assert due > now
    assert abs(((due - previous) / 600.0) - round((due - previous) / 600.0)) < 1e-6
