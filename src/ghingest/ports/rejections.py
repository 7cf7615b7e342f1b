"""The rejected-requests log: buckets of refused webhook requests (`core.rejections`), shared by every process on
the store, bounded by age and by row count whatever arrives.

Times filter by the bucket's minute: a bucket is `since` a time when its minute is not before that time's minute,
`until` a time when its minute is before it. `rejection_order`, `rejection_cursor` and `rejection_after` are the
list's order (its key, newest minute first) and keyset cursor, one for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ghingest.core.pagination import InvalidCursor, Page, decode_cursor, encode_cursor
from ghingest.core.rejections import Key, Reason, RejectionBucket, minute_of

RETENTION_SECONDS = 7 * 24 * 3600.0  # buckets older than this are deleted when a batch is recorded
MAX_ROWS = 10_000  # and the oldest beyond this many


@dataclass(frozen=True, slots=True)
class RejectionQuery:
    reasons: frozenset[Reason] | None = None  # None: every reason
    since: float | None = None
    until: float | None = None
    hook_id: str | None = None


@dataclass(frozen=True, slots=True)
class RejectionSummary:
    """What the Rejected page's banner and totals say of the buckets `since` a time."""

    total: int = 0
    by_reason: Mapping[Reason, int] = field(default_factory=dict)  # reasons with rejections only
    wrong_secret_hooks: Sequence[tuple[str, int]] = ()  # (hook id, "" unknown; count), most first, then by hook id
    aggregated_since: float | None = None  # the first rejection of the earliest aggregated bucket


class RejectionLog(Protocol):
    async def record(
        self,
        buckets: Sequence[RejectionBucket],
        *,
        keep_rows: int = MAX_ROWS,
        keep_seconds: float = RETENTION_SECONDS,
    ) -> None:
        """Add each bucket to the stored bucket of its key (a new one when there is none): counts added, the earlier
        first time, the later last time and its delivery id kept. Then trim: buckets whose minute is more than
        `keep_seconds` before now (the injected clock) are deleted, and beyond `keep_rows` the oldest (in list
        order). Durable when it returns."""
        ...

    async def page(self, query: RejectionQuery, *, cursor: str | None = None, limit: int = 50) -> Page[RejectionBucket]:
        """Buckets that match `query`, newest minute first (then by reason, client, event and hook id, descending),
        in keyset pages (`core.pagination`: `page_size`; an unreadable cursor raises `InvalidCursor`)."""
        ...

    async def count_since(self, since: float) -> int:
        """How many requests were refused since `since` (to the minute): the overview's count (e.g. of 24 h)."""
        ...

    async def summary(self, *, since: float) -> RejectionSummary:
        """The totals of the buckets since `since` (to the minute)."""
        ...


def rejection_order(bucket: RejectionBucket) -> Key:
    """The key `page` sorts by, descending."""
    return bucket.key


def rejection_cursor(bucket: RejectionBucket) -> str:
    return encode_cursor(bucket.key)


def rejection_after(cursor: str) -> Key:
    """The key a `page` cursor names; `InvalidCursor` for one that `rejection_cursor` did not make."""
    minute, reason, client, event, hook_id = decode_cursor(cursor, types=(int, str, str, str, str))
    if not isinstance(minute, int) or not all(isinstance(v, str) for v in (reason, client, event, hook_id)):
        raise InvalidCursor("cursor is not valid")
    try:
        return (minute, Reason(str(reason)), str(client), str(event), str(hook_id))
    except ValueError:
        raise InvalidCursor("cursor is not valid") from None


def first_minute(since: float | None) -> int | None:
    """The earliest minute a `since` admits."""
    return None if since is None else minute_of(since)


def matches(bucket: RejectionBucket, query: RejectionQuery) -> bool:
    """Whether `bucket` is one `query` selects (the memory backend's filter; the others' SQL and key conditions say
    the same)."""
    since = first_minute(query.since)
    return (
        (query.reasons is None or bucket.reason in query.reasons)
        and (since is None or bucket.minute >= since)
        and (query.until is None or bucket.minute < query.until)
        and (query.hook_id is None or bucket.hook_id == query.hook_id)
    )


def summarize(buckets: Sequence[RejectionBucket]) -> RejectionSummary:
    """The summary of these buckets (every backend reads the buckets since a time and folds them here: the log is
    bounded, so they are at most `MAX_ROWS`)."""
    by_reason: dict[Reason, int] = {}
    hooks: dict[str, int] = {}
    aggregated: float | None = None
    for b in buckets:
        by_reason[b.reason] = by_reason.get(b.reason, 0) + b.count
        if b.reason is Reason.WRONG_SECRET:
            hooks[b.hook_id] = hooks.get(b.hook_id, 0) + b.count
        if b.aggregated and (aggregated is None or b.first_at < aggregated):
            aggregated = b.first_at
    return RejectionSummary(
        total=sum(by_reason.values()),
        by_reason=by_reason,
        wrong_secret_hooks=sorted(hooks.items(), key=lambda item: (-item[1], item[0])),
        aggregated_since=aggregated,
    )
