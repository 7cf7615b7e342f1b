"""The RejectionLog contract: buckets merged by key, listed newest first in keyset pages with filters, counted and
summarized since a time, and bounded (by age on the injected clock, and by rows) whatever is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from ghingest.core.pagination import InvalidCursor
from ghingest.core.rejections import AGGREGATED, MALFORMED, Reason, RejectionBucket, minute_of
from ghingest.ports import ManualClock, RejectionQuery

pytestmark = pytest.mark.needs("rejections")


def bucket(
    at: float,
    reason: Reason = Reason.WRONG_SECRET,
    *,
    client: str = "192.0.2.1",
    event: str = "push",
    hook_id: str = "12345",
    delivery_id: str = "d-1",
    count: int = 1,
    span: float = 0.0,
    aggregated: bool = False,
) -> RejectionBucket:
    return RejectionBucket(
        minute=minute_of(at), reason=reason, client=client, event=event, hook_id=hook_id, delivery_id=delivery_id,
        count=count, first_at=at, last_at=at + span, aggregated=aggregated,
    )  # fmt: skip


async def everything(backend: Any, query: RejectionQuery | None = None, *, limit: int = 50) -> list[RejectionBucket]:
    found: list[RejectionBucket] = []
    cursor = None
    while True:
        page = await backend.rejections.page(query or RejectionQuery(), cursor=cursor, limit=limit)
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def test_buckets_of_one_key_merge(backend: Any, clock: ManualClock) -> None:
    t = minute_of(clock.now()) + 10
    await backend.rejections.record([bucket(t, delivery_id="d-1", count=3, span=5)])
    await backend.rejections.record([bucket(t + 20, delivery_id="d-2", count=2)])
    await backend.rejections.record([bucket(t - 5, delivery_id="d-0", count=1)])  # an older batch, late
    assert await everything(backend) == [
        bucket(t - 5, delivery_id="d-2", count=6, span=25),
    ]


async def test_an_empty_delivery_id_keeps_the_one_known(backend: Any, clock: ManualClock) -> None:
    t = minute_of(clock.now())
    await backend.rejections.record([bucket(t, delivery_id="d-1")])
    await backend.rejections.record([bucket(t + 1, delivery_id="")])
    assert [b.delivery_id for b in await everything(backend)] == ["d-1"]


async def test_pages_newest_minute_first_then_by_key(backend: Any, clock: ManualClock) -> None:
    t = minute_of(clock.now()) - 600
    made = [
        bucket(t + 60 * n, reason, client=client, event=event, hook_id=hook)
        for n in range(3)
        for reason in (Reason.WRONG_SECRET, Reason.BAD_HEADERS)
        for client in ("192.0.2.1", "2001:db8::1", "", MALFORMED)
        for event, hook in (("push", "1"), ("", ""), (AGGREGATED, AGGREGATED))
    ]
    await backend.rejections.record(made)
    expected = sorted(made, key=lambda b: b.key, reverse=True)
    assert await everything(backend, limit=7) == expected
    first = await backend.rejections.page(RejectionQuery(), limit=5)
    assert list(first.items) == expected[:5]
    assert first.next_cursor is not None


async def test_filters_by_reason_hook_and_time(backend: Any, clock: ManualClock) -> None:
    now = minute_of(clock.now())
    await backend.rejections.record(
        [
            bucket(now - 7200, Reason.WRONG_SECRET, hook_id="1"),
            bucket(now - 60, Reason.WRONG_SECRET, hook_id="2"),
            bucket(now - 60, Reason.TOO_LARGE, hook_id="1"),
            bucket(now + 5, Reason.MISSING_SIGNATURE, hook_id="1"),
        ]
    )

    async def keys(**query: Any) -> list[tuple[int, str, str]]:
        return [(b.minute - now, b.reason.value, b.hook_id) for b in await everything(backend, RejectionQuery(**query))]

    assert await keys(reasons=frozenset({Reason.WRONG_SECRET})) == [
        (-60, "wrong_secret", "2"),
        (-7200, "wrong_secret", "1"),
    ]
    assert await keys(hook_id="1") == [
        (0, "missing_signature", "1"),
        (-60, "too_large", "1"),
        (-7200, "wrong_secret", "1"),
    ]
    assert await keys(since=now - 90) == [
        (0, "missing_signature", "1"),
        (-60, "wrong_secret", "2"),
        (-60, "too_large", "1"),
    ]
    assert await keys(since=now - 90, until=now) == [(-60, "wrong_secret", "2"), (-60, "too_large", "1")]
    assert await keys(reasons=frozenset()) == []


async def test_count_and_summary_since_a_time(backend: Any, clock: ManualClock) -> None:
    now = minute_of(clock.now())
    await backend.rejections.record(
        [
            bucket(now - 90_000, Reason.WRONG_SECRET, hook_id="9", count=100),  # over a day ago
            bucket(now - 60, Reason.WRONG_SECRET, hook_id="1", count=4),
            bucket(now - 60, Reason.WRONG_SECRET, hook_id="2", count=7, client="192.0.2.9"),
            bucket(now - 30, Reason.BAD_HEADERS, hook_id="", count=2),
            bucket(
                now - 50, Reason.TOO_LARGE, client=AGGREGATED, event=AGGREGATED, hook_id=AGGREGATED, aggregated=True
            ),
        ]
    )
    since = clock.now() - 86_400
    assert await backend.rejections.count_since(since) == 14
    assert await backend.rejections.count_since(clock.now() + 3600) == 0
    summary = await backend.rejections.summary(since=since)
    assert summary.total == 14
    assert dict(summary.by_reason) == {Reason.WRONG_SECRET: 11, Reason.BAD_HEADERS: 2, Reason.TOO_LARGE: 1}
    assert list(summary.wrong_secret_hooks) == [("2", 7), ("1", 4)]
    assert summary.aggregated_since == now - 50
    empty = await backend.rejections.summary(since=clock.now() + 3600)
    assert (empty.total, dict(empty.by_reason), empty.aggregated_since) == (0, {}, None)


async def test_the_oldest_rows_past_the_cap_are_deleted(backend: Any, clock: ManualClock) -> None:
    t = minute_of(clock.now()) - 3600
    await backend.rejections.record([bucket(t + 60 * n, hook_id=str(n)) for n in range(30)], keep_rows=20)
    kept = await everything(backend)
    assert len(kept) == 20
    assert {b.hook_id for b in kept} == {str(n) for n in range(10, 30)}
    await backend.rejections.record([bucket(t + 60 * 40, hook_id="new")], keep_rows=20)
    kept = await everything(backend)
    assert len(kept) == 20
    assert kept[0].hook_id == "new"
    assert "10" not in {b.hook_id for b in kept}


async def test_buckets_past_the_retention_are_deleted(backend: Any, clock: ManualClock) -> None:
    t = clock.now()
    await backend.rejections.record([bucket(t, hook_id="old")], keep_seconds=3600)
    clock.advance(3600 + 120)
    await backend.rejections.record([bucket(clock.now(), hook_id="new")], keep_seconds=3600)
    assert [b.hook_id for b in await everything(backend)] == ["new"]
    assert await backend.rejections.count_since(t - 60) == 1


async def test_an_unreadable_cursor_is_refused(backend: Any) -> None:
    for cursor in ("nonsense", "WzEsMiwzXQ", "WzEsIm5vLXN1Y2gtcmVhc29uIiwiIiwiIiwiIl0"):
        with pytest.raises(InvalidCursor):
            await backend.rejections.page(RejectionQuery(), cursor=cursor)


@pytest.mark.needs("persistent")
async def test_recorded_buckets_are_kept_across_a_reopening(backend: Any, reopen: Any, clock: ManualClock) -> None:
    await backend.rejections.record([bucket(clock.now(), count=5)])
    async with reopen() as again:
        assert await again.rejections.count_since(clock.now() - 60) == 5
