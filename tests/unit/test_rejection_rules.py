"""core.rejections: what is kept of a refused request, and the aggregator's bounds (nothing counted twice or lost
below them; past them, aggregated per minute and reason, or counted as dropped)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.core.rejections import (
    AGGREGATED,
    MALFORMED,
    Aggregator,
    Reason,
    Rejection,
    merge,
    minute_of,
    observe,
)

GUID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"


def rejection(
    at: float, *, client: str = "192.0.2.1", hook: str = "1", reason: Reason = Reason.WRONG_SECRET
) -> Rejection:
    return Rejection(at=at, reason=reason, client=client, event="release", delivery_id=GUID, hook_id=hook)


def test_only_well_formed_header_values_are_kept() -> None:
    headers = {"x-github-event": "release", "x-github-delivery": GUID, "x-github-hook-id": "12345"}
    kept = observe(Reason.WRONG_SECRET, headers, client="192.0.2.7", at=100.0)
    assert (kept.event, kept.delivery_id, kept.hook_id, kept.client) == ("release", GUID, "12345", "192.0.2.7")
    hostile = {"x-github-event": "<script>", "x-github-delivery": "x" * 500, "x-github-hook-id": "12; DROP"}
    kept = observe(Reason.BAD_HEADERS, hostile, client="not an address", at=100.0)
    assert (kept.event, kept.delivery_id, kept.hook_id, kept.client) == (MALFORMED,) * 4
    assert observe(Reason.MISSING_SIGNATURE, {}, client=None, at=1.0).hook_id == ""


def test_a_refused_source_keeps_its_address_only() -> None:
    headers = {"x-github-event": "release", "x-github-delivery": GUID, "x-github-hook-id": "12345"}
    kept = observe(Reason.FORBIDDEN_SOURCE, headers, client="198.51.100.9", at=5.0)
    assert (kept.client, kept.event, kept.delivery_id, kept.hook_id) == ("198.51.100.9", "", "", "")


def test_one_key_per_minute_is_one_bucket_and_the_first_of_each_opens_it() -> None:
    agg = Aggregator()
    assert agg.add(rejection(60.0)) is True
    assert agg.add(rejection(61.0)) is False  # same key, same minute: counted in the open bucket
    assert agg.add(rejection(125.0)) is True  # the next minute
    [first, second] = agg.drain()
    assert (first.minute, first.count, first.first_at, first.last_at) == (60, 2, 60.0, 61.0)
    assert (second.minute, second.count) == (120, 1)
    assert agg.drain() == []


def test_past_the_cap_a_minutes_rejections_are_aggregated_per_reason() -> None:
    agg = Aggregator(max_keys_per_minute=3)
    for n in range(10):
        agg.add(rejection(60.0 + n, client=f"192.0.2.{n}"))
    agg.add(rejection(61.0, client="192.0.2.1"))  # a key that has its bucket keeps it
    buckets = agg.drain()
    own = [b for b in buckets if not b.aggregated]
    [aggregated] = [b for b in buckets if b.aggregated]
    assert len(own) == 3
    assert (aggregated.client, aggregated.event, aggregated.hook_id, aggregated.count) == (AGGREGATED,) * 3 + (7,)
    assert sum(b.count for b in buckets) == 11


def test_a_full_aggregator_counts_what_it_cannot_keep_as_dropped() -> None:
    agg = Aggregator(max_keys_per_minute=1000, max_pending=2)
    for n in range(5):
        agg.add(rejection(60.0, client=f"192.0.2.{n}"))
    assert len(agg) == 2
    assert agg.dropped == 3


def test_a_failed_flush_is_restored_merged_with_what_came_meanwhile() -> None:
    agg = Aggregator()
    agg.add(rejection(60.0))
    drained = agg.drain()
    agg.add(rejection(62.0))
    agg.restore(drained)
    [bucket] = agg.drain()
    assert (bucket.count, bucket.first_at, bucket.last_at) == (2, 60.0, 62.0)


def test_merging_two_buckets_keeps_the_newer_delivery_id_and_the_wider_times() -> None:
    agg = Aggregator()
    agg.add(rejection(70.0))
    [newer] = agg.drain()
    agg.add(Rejection(at=65.0, reason=Reason.WRONG_SECRET, client="192.0.2.1", event="release", delivery_id="",
                      hook_id="1"))  # fmt: skip
    [older] = agg.drain()
    merged = merge(older, newer)
    assert (merged.count, merged.first_at, merged.last_at, merged.delivery_id) == (2, 65.0, 70.0, GUID)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 600, allow_nan=False), st.integers(0, 30), st.sampled_from(list(Reason))),
        max_size=300,
    ),
    st.integers(1, 10),
)
def test_every_rejection_is_counted_once_and_each_minute_holds_at_most_cap_buckets_per_reason_plus_one(
    arrivals: list[tuple[float, int, Reason]], cap: int
) -> None:
    agg = Aggregator(max_keys_per_minute=cap, max_pending=10_000)
    for at, client, reason in sorted(arrivals):
        agg.add(rejection(at, client=f"192.0.2.{client}", reason=reason))
    buckets = agg.drain()
    assert sum(b.count for b in buckets) == len(arrivals)
    assert agg.dropped == 0
    for minute in {minute_of(at) for at, _, _ in arrivals}:
        of_minute = [b for b in buckets if b.minute == minute]
        assert len([b for b in of_minute if not b.aggregated]) <= cap
        assert len({b.reason for b in of_minute if b.aggregated}) == len([b for b in of_minute if b.aggregated])
    assert len({b.key for b in buckets}) == len(buckets)
