"""Recording outcomes, shared by the SQL stores (SQLite, PostgreSQL): the statements, the rows a batch writes and
the release columns a change rewrites. Each store runs them in its own transaction (`?` placeholders, SQLite's
paramstyle; the PostgreSQL adapter converts them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ghingest.adapters.sql import queries
from ghingest.core.delivery import IncomingDelivery
from ghingest.core.events import EventRecord
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import ChangeOrder, ReleaseChange, ReleaseRecord, ReleaseState, covered, rebuild
from ghingest.core.states import DeliveryStatus
from ghingest.ports.store import Outcome

UPSERT_EVENT = (
    "INSERT INTO events (seq, delivery_id, event, action, repository, organization, sender, installation_id,"
    " hook_id, status, error, received_at, processed_at, shape_warning)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (seq) DO UPDATE SET event = excluded.event, action = excluded.action,"
    " repository = excluded.repository, organization = excluded.organization, sender = excluded.sender,"
    " installation_id = excluded.installation_id, hook_id = excluded.hook_id, status = excluded.status,"
    " error = excluded.error, processed_at = excluded.processed_at, shape_warning = excluded.shape_warning"
)
INSERT_RELEASE_CHANGE = (
    "INSERT INTO release_changes (delivery_id, release_id, action, order_ts, order_seq, received_at, content)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING"
)
REPLACE_RELEASE_CHANGE = (
    "UPDATE release_changes SET release_id = ?, action = ?, order_ts = ?, order_seq = ?, content = ?"
    " WHERE delivery_id = ?"
)
# `{least}`: the dialect's two-argument minimum (SQLite `min`, PostgreSQL `least`).
UPSERT_RELEASE = (
    "INSERT INTO releases (id, repository, tag, name, author_login, author_avatar_url, draft, prerelease,"
    " created_at, published_at, html_url, body, state, sort_at, content_ts, content_seq, first_seen_at,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET repository = excluded.repository, tag = excluded.tag,"
    " name = excluded.name, author_login = excluded.author_login,"
    " author_avatar_url = excluded.author_avatar_url, draft = excluded.draft, prerelease = excluded.prerelease,"
    " created_at = excluded.created_at, published_at = excluded.published_at, html_url = excluded.html_url,"
    " body = excluded.body, state = excluded.state, sort_at = excluded.sort_at,"
    " content_ts = excluded.content_ts, content_seq = excluded.content_seq,"
    " first_seen_at = {least}(releases.first_seen_at, excluded.first_seen_at), updated_at = excluded.updated_at"
)
SELECT_CHANGES = (
    "SELECT delivery_id, release_id, action, order_ts, order_seq, received_at, content FROM release_changes"
    " WHERE release_id = ?"
)
# Coverage (docs/adr/0019-release-sources.md): the stored changes of a release with a change's content, found by
# the release's index (its few rows compared by their content's text, which `change_row` writes canonically).
SELECT_SAME_CONTENT = SELECT_CHANGES + " AND content = ?"
DELETE_CHANGE = "DELETE FROM release_changes WHERE delivery_id = ?"
# A covered poll change is no change of its release, but the release was seen then: `first_seen_at` is the earliest
# receipt of any of its changes (as the upsert's `{least}` keeps it).
FIRST_SEEN = "UPDATE releases SET first_seen_at = ? WHERE id = ? AND first_seen_at > ?"
# Attempts are set, not incremented: recording the same outcome twice (a redelivered claim) counts it once.
MARK_PROCESSED = (
    "UPDATE delivery_states SET status = 'processed', processed_at = ?, error = NULL, attempts = ?,"
    " lease_until = 0 WHERE seq = ?"
)
MARK_RETRY = "UPDATE delivery_states SET attempts = ?, next_attempt_at = ?, lease_until = 0, error = ? WHERE seq = ?"
MARK_FAILED = (
    "UPDATE delivery_states SET status = 'failed', processed_at = ?, error = ?, attempts = ?,"
    " lease_until = 0 WHERE seq = ?"
)

# Another hook (or a redelivery) sent a delivery id already recorded (docs/adr/0010-dedupe-key.md).
SIGHTING = (
    "INSERT INTO delivery_sightings (delivery_id, hook_id, first_at, last_at, count, same_body, secret_index)"
    " VALUES (?, ?, ?, ?, 1, ? = (SELECT body FROM deliveries WHERE delivery_id = ?), ?)"  # NULL: not recorded yet
    " ON CONFLICT (delivery_id, hook_id) DO UPDATE SET last_at = excluded.last_at,"
    " count = delivery_sightings.count + 1, same_body = delivery_sightings.same_body AND excluded.same_body,"
    " secret_index = excluded.secret_index"
)


def sighting_params(delivery: IncomingDelivery, received_at: float) -> tuple[Any, ...]:
    return (delivery.delivery_id, delivery.hook_id or "", received_at, received_at, delivery.body,
            delivery.delivery_id, delivery.secret_index)  # fmt: skip


RELEASE_COLUMNS = (
    "id", "repository", "tag", "name", "author_login", "author_avatar_url", "draft", "prerelease", "created_at",
    "published_at", "html_url", "body", "state", "content_ts", "content_seq", "first_seen_at",
)  # fmt: skip
SELECT_RELEASE = f"SELECT {', '.join(RELEASE_COLUMNS)} FROM releases WHERE id = ?"  # noqa: S608 - fixed columns
CHANGE_COLUMNS = ("delivery_id", "release_id", "action", "order_ts", "order_seq", "received_at", "content")


@dataclass
class Batch:
    """The rows a batch of outcomes writes, statement by statement. `feed` is in order; a `ReleaseChange` in it
    stands for the release's feed entry, written only when folding the change changed the release."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    processed: list[tuple[Any, ...]] = field(default_factory=list)
    retried: list[tuple[Any, ...]] = field(default_factory=list)
    failed: list[tuple[Any, ...]] = field(default_factory=list)
    jobs: list[tuple[Any, ...]] = field(default_factory=list)  # forward_jobs rows for `forwarding.INSERT_JOB`
    feed: list[tuple[str, str, float] | ReleaseChange] = field(default_factory=list)

    @property
    def release_ids(self) -> list[int]:
        return sorted({entry.release_id for entry in self.feed if isinstance(entry, ReleaseChange)})


def plan(outcomes: Sequence[Outcome], now: float) -> Batch:
    batch = Batch()
    for outcome in outcomes:
        delivery = outcome.delivery
        if outcome.processed is not None:
            batch.events.append(event_row(delivery, outcome.processed.event, DeliveryStatus.PROCESSED, None, now))
            batch.feed.append(("event", delivery.delivery_id, now))
            if outcome.processed.release is not None:
                batch.feed.append(outcome.processed.release)
            if outcome.processed.forwards:
                batch.feed.append(("forward", delivery.delivery_id, now))
            for target in outcome.processed.forwards:
                batch.jobs.append((delivery.seq, delivery.delivery_id, target.destination, target.route,
                                   delivery.received_at, now, now))  # fmt: skip
            batch.processed.append((now, delivery.attempts + 1, delivery.seq))
        elif outcome.retry_at is not None:
            batch.retried.append((delivery.attempts + 1, outcome.retry_at, outcome.error, delivery.seq))
        else:
            if outcome.fallback_event is not None:
                failed = event_row(delivery, outcome.fallback_event, DeliveryStatus.FAILED, outcome.error, now)
                batch.events.append(failed)
                batch.feed.append(("event", delivery.delivery_id, now))
            batch.failed.append((now, outcome.error, delivery.attempts + 1, delivery.seq))
    return batch


def event_row(
    delivery: StoredDelivery, event: EventRecord, status: DeliveryStatus, error: str | None, now: float
) -> tuple[Any, ...]:
    return (
        delivery.seq,
        event.delivery_id,
        event.event,
        event.action,
        event.repository,
        event.organization,
        event.sender,
        event.installation_id,
        event.hook_id,
        status.value,
        error,
        delivery.received_at,
        now,
        event.shape_warning,
    )


def change_row(change: ReleaseChange) -> tuple[Any, ...]:
    """`INSERT_RELEASE_CHANGE`'s parameters; `replace_params` turns them into `REPLACE_RELEASE_CHANGE`'s."""
    content = orjson.dumps(change.content).decode("utf-8")
    return (change.delivery_id, change.release_id, change.action, change.order.timestamp, change.order.seq,
            change.received_at, content)  # fmt: skip


def replace_params(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[1:5], row[6], row[0])


def record_of(row: Any) -> ReleaseRecord:
    """The stored record (a `SELECT_RELEASE` row), without its history: `fold` needs only state, content and
    order for a new change."""
    m = dict(zip(RELEASE_COLUMNS, row, strict=True))
    return ReleaseRecord(
        release_id=m["id"],
        state=ReleaseState(m["state"]),
        content=queries.content_of(m),
        content_order=ChangeOrder(m["content_ts"], m["content_seq"]),
        history=(),
    )


def change_of(row: Any) -> ReleaseChange:
    """A stored change (a `SELECT_CHANGES` row)."""
    return queries.release_change_of(dict(zip(CHANGE_COLUMNS, row, strict=True)))


def rebuilt(rows: Sequence[Any]) -> tuple[ReleaseRecord, float]:
    """A release rebuilt from all of its changes (`SELECT_CHANGES` rows), and when it was first seen."""
    changes = [change_of(r) for r in rows]
    return rebuild(changes), min(c.received_at for c in changes)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What coverage does with a batch's release changes (`coverage`)."""

    covered: frozenset[str]  # the batch's poll changes a webhook change covers: no row (one written before goes)
    dropped: frozenset[str]  # stored poll changes a webhook change of the batch covers: their rows go


def coverage(same_content: Iterable[ReleaseChange], batch: Sequence[ReleaseChange]) -> Coverage:
    """Coverage among the batch's changes and the stored ones with the content of one of them (`same_content`:
    `SELECT_SAME_CONTENT`'s); a batch's change stands for its own stored row (it replaces it)."""
    ids = {change.delivery_id for change in batch}
    hidden = covered([*(c for c in same_content if c.delivery_id not in ids), *batch])
    return Coverage(frozenset(hidden & ids), frozenset(hidden - ids))


def release_values(record: ReleaseRecord, *, first_seen_at: float) -> tuple[Any, ...]:
    """The stored columns of a record, in `RELEASE_COLUMNS` order."""
    c = record.content
    return (
        record.release_id,
        c.repository,
        c.tag,
        c.name,
        c.author_login,
        c.author_avatar_url,
        c.draft,
        c.prerelease,
        c.created_at,
        c.published_at,
        c.html_url,
        c.body,
        record.state.value,
        record.content_order.timestamp,
        record.content_order.seq,
        first_seen_at,
    )


def upsert_params(record: ReleaseRecord, *, first_seen_at: float, now: float) -> tuple[Any, ...]:
    """`UPSERT_RELEASE`'s parameters."""
    values = release_values(record, first_seen_at=first_seen_at)
    return (*values[:13], queries.sort_at(record.content), *values[13:], now)


def changed_columns(current: Any, record: ReleaseRecord, *, first_seen_at: float, now: float) -> dict[str, Any]:
    """The columns of the stored release `current` (a `SELECT_RELEASE` row) that `record` changes, with
    `updated_at`; empty when nothing changes (then the record stays as it is). Writing only these, an unchanged
    indexed column (sort time, repository, state) costs no index maintenance, and unchanged text no search-index
    update."""
    values = release_values(record, first_seen_at=first_seen_at)
    changed = {
        name: new
        for name, old, new in zip(RELEASE_COLUMNS, current, values, strict=True)
        if old != new and not (isinstance(new, bool) and bool(old) == new)
    }
    if not changed:
        return {}
    old_sort_at = current[RELEASE_COLUMNS.index("published_at")] or current[RELEASE_COLUMNS.index("created_at")]
    if (sort_at := queries.sort_at(record.content)) != (old_sort_at or ""):
        changed["sort_at"] = sort_at
    changed["updated_at"] = now
    return changed


def update_release(changed: dict[str, Any], release_id: int) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE that writes `changed` (from `changed_columns`: names from `RELEASE_COLUMNS` only)."""
    assignments = ", ".join(f"{name} = ?" for name in changed)
    return f"UPDATE releases SET {assignments} WHERE id = ?", (*changed.values(), release_id)  # noqa: S608


def first_seen(current: Any, change: ReleaseChange) -> float:
    return float(min(current[RELEASE_COLUMNS.index("first_seen_at")], change.received_at))
