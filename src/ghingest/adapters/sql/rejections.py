"""The SQL of `RejectionLog`, shared by the SQLite and PostgreSQL adapters: writes as `?` statements (SQLite runs
them as they are, PostgreSQL through `pyformat`), reads as SQLAlchemy Core, and the rows' mapping to buckets.

A batch is one upsert per bucket on the primary key (counts added; the earlier first time; the later last time and
its delivery id: `CASE`, which both dialects spell alike), then the trim: `TRIM_OLD` deletes the minutes before the
retention, and `TRIM_ROWS` (only when `ROWS` counts more than the cap) the rows past the cap in list order (the
primary key's, newest first).
Every list reads the primary key newest first; the table is bounded (`MAX_ROWS`), so the summary reads the rows
since a time and folds them in Python (`ports.rejections.summarize`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ghingest.adapters.sql.queries import MappingRow
from ghingest.adapters.sql.schema import rejections
from ghingest.core.rejections import Key, Reason, RejectionBucket, minute_of
from ghingest.ports.rejections import RejectionQuery, first_minute

_KEY = ("minute", "reason", "client", "event", "hook_id")
_COLUMNS = (*_KEY, "delivery_id", "count", "first_at", "last_at", "aggregated")
_NEWER = "excluded.last_at >= rejections.last_at"
UPSERT = (
    f"INSERT INTO rejections ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"  # noqa: S608
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET count = rejections.count + excluded.count,"
    " first_at = CASE WHEN excluded.first_at < rejections.first_at THEN excluded.first_at ELSE rejections.first_at END,"
    f" delivery_id = CASE WHEN ({_NEWER} AND excluded.delivery_id <> '') OR rejections.delivery_id = ''"
    " THEN excluded.delivery_id"
    " ELSE rejections.delivery_id END,"
    f" last_at = CASE WHEN {_NEWER} THEN excluded.last_at ELSE rejections.last_at END"
)
TRIM_OLD = "DELETE FROM rejections WHERE minute < ?"  # parameters: (oldest minute kept,)
ROWS = "SELECT count(*) FROM rejections"  # at most the cap plus a batch: TRIM_ROWS runs only past the cap
_ORDER = ", ".join(f"{column} DESC" for column in _KEY)
# Parameters: (keep_rows,). LIMIT with OFFSET, because SQLite takes no OFFSET alone; the limit is any bound above
# the rows a table past its cap can hold (the cap plus one batch).
TRIM_ROWS = (
    f"DELETE FROM rejections WHERE ({', '.join(_KEY)}) IN"  # noqa: S608
    f" (SELECT {', '.join(_KEY)} FROM rejections ORDER BY {_ORDER} LIMIT 1000000000 OFFSET ?)"
)


def params(b: RejectionBucket) -> tuple[Any, ...]:
    return (
        b.minute, b.reason.value, b.client, b.event, b.hook_id, b.delivery_id, b.count, b.first_at, b.last_at,
        int(b.aggregated),
    )  # fmt: skip


def bucket_of(row: MappingRow) -> RejectionBucket:
    m = row._mapping
    return RejectionBucket(
        minute=int(m["minute"]),
        reason=Reason(m["reason"]),
        client=m["client"],
        event=m["event"],
        hook_id=m["hook_id"],
        delivery_id=m["delivery_id"],
        count=int(m["count"]),
        first_at=float(m["first_at"]),
        last_at=float(m["last_at"]),
        aggregated=bool(m["aggregated"]),
    )


def _where(statement: sa.Select[Any], query: RejectionQuery) -> sa.Select[Any]:
    t = rejections.c
    if query.reasons is not None:
        statement = statement.where(t.reason.in_(sorted(r.value for r in query.reasons)))
    since = first_minute(query.since)
    if since is not None:
        statement = statement.where(t.minute >= since)
    if query.until is not None:
        statement = statement.where(t.minute < query.until)
    if query.hook_id is not None:
        statement = statement.where(t.hook_id == query.hook_id)
    return statement


def select_page(query: RejectionQuery, after: Key | None, limit: int) -> sa.Select[Any]:
    key = tuple(rejections.c[name] for name in _KEY)
    statement = _where(sa.select(rejections), query)
    if after is not None:
        statement = statement.where(sa.tuple_(*key) < (after[0], after[1].value, *after[2:]))
    return statement.order_by(*(column.desc() for column in key)).limit(limit)


def select_count_since(since: float) -> sa.Select[Any]:
    return _where(sa.select(sa.func.coalesce(sa.func.sum(rejections.c["count"]), 0)), RejectionQuery(since=since))


def select_since(since: float) -> sa.Select[Any]:
    return _where(sa.select(rejections), RejectionQuery(since=since))


def oldest_kept(now: float, keep_seconds: float) -> int:
    """The oldest minute a trim at `now` keeps."""
    return minute_of(now - keep_seconds)
