"""The SQL of `GitHubSyncState`, shared by the SQLite and PostgreSQL adapters: writes as `?` statements (SQLite runs
them as they are, PostgreSQL through `pyformat`), reads as SQLAlchemy Core, and the rows' mapping to values.

Every write is an upsert or an insert-if-new keyed by the table's primary key, so that two reconcilers (or
trackers) saving the same row leave one. The list of gaps walks `ix_github_gaps_sort` (or, by state,
`ix_github_gaps_state_sort`) newest first; a hook's open gaps, the partial index `ix_github_gaps_open`; the purge,
`ix_github_gaps_state_sort` over the closed states (stopping at `PURGE_LIMIT` rows).

A lease is one upsert that changes the row only when the lease is the holder's own or has run out
(`HOLD_LEASE`: its row count is 1 when the holder holds it afterwards, 0 when another does). PostgreSQL's
`ON CONFLICT DO UPDATE` locks the conflicting row and checks the `WHERE` against its newest version, and SQLite
runs one writer at a time, so of concurrent holders at most one changes the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from ghingest.adapters.sql.queries import MappingRow
from ghingest.adapters.sql.schema import OPEN_GAP, github_gaps, github_hook_scans, leases, tracked_repositories
from ghingest.core.reconcile import OPEN_STATES, Gap, GapKind, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.github_sync import PURGE_LIMIT

GAP_COLUMNS = tuple(c.name for c in github_gaps.c)
SCAN_COLUMNS = tuple(c.name for c in github_hook_scans.c)
TRACKED_COLUMNS = tuple(c.name for c in tracked_repositories.c)


def _insert(table: sa.Table, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608


def _upsert(table: sa.Table, columns: Sequence[str]) -> str:
    keys = [c.name for c in table.primary_key.columns]
    changes = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return f"{_insert(table, columns)} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {changes}"


UPSERT_GAP = _upsert(github_gaps, GAP_COLUMNS)
UPSERT_SCAN = _upsert(github_hook_scans, SCAN_COLUMNS)
UPSERT_TRACKED = _upsert(tracked_repositories, TRACKED_COLUMNS)
INSERT_TRACKED = _insert(tracked_repositories, TRACKED_COLUMNS) + " ON CONFLICT (key) DO NOTHING"  # rowcount: 0 or 1
DELETE_TRACKED = "DELETE FROM tracked_repositories WHERE key = ?"  # rowcount: 0 or 1

# The closed states, spelled out: `ix_github_gaps_state_sort` is walked from each of them up to `before`. The outer
# condition repeats the inner one, so that a gap reopened meanwhile (PostgreSQL re-checks it on the row's newest
# version) stays. Parameters: (before, before).
_CLOSED = ", ".join(f"'{state.value}'" for state in sorted(set(GapState) - OPEN_STATES))
_PURGEABLE = f"state IN ({_CLOSED}) AND delivered_at < ?"
PURGE_GAPS = (
    f"DELETE FROM github_gaps WHERE {_PURGEABLE} AND (hook, delivery_id) IN"  # noqa: S608
    f" (SELECT hook, delivery_id FROM github_gaps WHERE {_PURGEABLE} LIMIT {PURGE_LIMIT})"
)  # rowcount: how many

# Parameters: (name, holder, until, now). Row count 1: `holder` holds it now; 0: another does.
HOLD_LEASE = (
    f"{_insert(leases, ('name', 'holder', 'until'))} ON CONFLICT (name) DO UPDATE"
    " SET holder = excluded.holder, until = excluded.until"
    " WHERE leases.holder = excluded.holder OR leases.until <= ?"
)
RELEASE_LEASE = "DELETE FROM leases WHERE name = ? AND holder = ?"


# --- gaps -------------------------------------------------------------------------------------------------------


def gap_params(gap: Gap) -> tuple[Any, ...]:
    return (
        gap.hook, gap.delivery_id, gap.github_id, gap.event, gap.action, gap.delivered_at, gap.status_code,
        gap.github_status, gap.kind.value, gap.state.value, gap.found_at, gap.updated_at, gap.requests,
        gap.last_requested_at, gap.arrived_at, gap.error,
    )  # fmt: skip


def unique_gaps(gaps: Iterable[Gap]) -> list[Gap]:
    """The last of each (hook, delivery id), in their first order: what saving them one after the other leaves."""
    last = {(gap.hook, gap.delivery_id): gap for gap in gaps}
    return list(last.values())


def gap_of(row: MappingRow) -> Gap:
    m = row._mapping
    return Gap(
        hook=m["hook"],
        delivery_id=m["delivery_id"],
        github_id=m["github_id"],
        event=m["event"],
        action=m["action"],
        delivered_at=m["delivered_at"],
        status_code=m["status_code"],
        github_status=m["github_status"],
        kind=GapKind(m["kind"]),
        state=GapState(m["state"]),
        found_at=m["found_at"],
        updated_at=m["updated_at"],
        requests=m["requests"],
        last_requested_at=m["last_requested_at"],
        arrived_at=m["arrived_at"],
        error=m["error"],
    )


def select_gaps_for(hook: str, delivery_ids: Sequence[str]) -> sa.Select[Any]:
    """The gaps of `hook` among `delivery_ids` (primary-key look-ups)."""
    return sa.select(github_gaps).where(github_gaps.c.hook == hook, github_gaps.c.delivery_id.in_(delivery_ids))


def select_open_gaps(hook: str) -> sa.Select[Any]:
    """A hook's open gaps, oldest first. The state condition is the partial index's own text, so that SQLite sees
    that the index covers it (a bound parameter would hide that)."""
    return (
        sa.select(github_gaps)
        .where(github_gaps.c.hook == hook, sa.text(OPEN_GAP))
        .order_by(github_gaps.c.delivered_at, github_gaps.c.delivery_id)
    )


def select_gaps(
    *, states: frozenset[GapState] | None, hook: str | None, after: tuple[float, str, str] | None, limit: int
) -> sa.Select[Any]:
    """`limit` gaps, newest first (then by hook, then by delivery id, descending), after the keyset `after`."""
    key = (github_gaps.c.delivered_at, github_gaps.c.hook, github_gaps.c.delivery_id)
    statement = sa.select(github_gaps)
    if states is not None:
        statement = statement.where(github_gaps.c.state.in_(sorted(s.value for s in states)))
    if hook is not None:
        statement = statement.where(github_gaps.c.hook == hook)
    if after is not None:
        statement = statement.where(sa.tuple_(*key) < after)
    return statement.order_by(*(column.desc() for column in key)).limit(limit)


def select_gap_counts() -> sa.Select[Any]:
    return sa.select(github_gaps.c.state, sa.func.count().label("n")).group_by(github_gaps.c.state)


def gap_counts_of(rows: Iterable[MappingRow]) -> dict[GapState, int]:
    """`select_gap_counts`' answer, with every state (0 when none)."""
    counts = dict.fromkeys(GapState, 0)
    for row in rows:
        counts[GapState(row._mapping["state"])] = int(row._mapping["n"])
    return counts


# --- scans ------------------------------------------------------------------------------------------------------


def scan_params(scan: HookScan) -> tuple[Any, ...]:
    return (
        scan.hook, scan.last_run_at, scan.last_ok_at, scan.error, scan.newest_seen_at, scan.deliveries_seen,
        scan.requests_made,
    )  # fmt: skip


def scan_of(row: MappingRow) -> HookScan:
    m = row._mapping
    return HookScan(**{name: m[name] for name in SCAN_COLUMNS})


def select_scan(hook: str) -> sa.Select[Any]:
    return sa.select(github_hook_scans).where(github_hook_scans.c.hook == hook)


def select_scans() -> sa.Select[Any]:
    return sa.select(github_hook_scans).order_by(github_hook_scans.c.hook)


# --- tracked repositories ---------------------------------------------------------------------------------------


def known_text(known: Mapping[int, str]) -> str:
    """`TrackedRepository.known` as a JSON object (its keys are text in JSON)."""
    return orjson.dumps({str(release_id): digest for release_id, digest in sorted(known.items())}).decode()


def known_of(text: str) -> dict[int, str]:
    return {int(release_id): str(digest) for release_id, digest in orjson.loads(text).items()}


def tracked_params(r: TrackedRepository) -> tuple[Any, ...]:
    return (
        r.key, r.full_name, r.added_at, r.added_by, r.repository_id, r.etag, known_text(r.known), r.last_polled_at,
        r.last_status, r.last_changed_at, r.last_error, r.next_poll_at, r.polls, r.not_modified,
    )  # fmt: skip


def tracked_of(row: MappingRow) -> TrackedRepository:
    m = row._mapping
    values = {name: m[name] for name in TRACKED_COLUMNS}
    return TrackedRepository(**{**values, "known": known_of(m["known"])})


def select_tracked(key: str) -> sa.Select[Any]:
    return sa.select(tracked_repositories).where(tracked_repositories.c.key == key)


def select_all_tracked() -> sa.Select[Any]:
    return sa.select(tracked_repositories).order_by(tracked_repositories.c.key)
