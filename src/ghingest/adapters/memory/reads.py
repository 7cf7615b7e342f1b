"""The memory read side: the read API's and the dashboard's queries as scans of the tables, in the same orders
and with the same keyset cursors as the SQL backends (`core.pagination`).

Search matches as SQLite's FTS5 index does (`core.search.matches`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from ghingest.adapters.memory.tables import DeliveryRow, EventRow, JobRow, MemoryDatabase, ReleaseRow
from ghingest.core import search
from ghingest.core.pagination import InvalidCursor, Page, decode_cursor, encode_cursor, page_of, page_size
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import sort_at
from ghingest.core.states import DeliveryStatus
from ghingest.ports import (
    DeliveryView,
    EventQuery,
    EventView,
    ForwardOutcome,
    HourCounts,
    ReadCapabilities,
    ReleaseQuery,
    ReleaseRef,
    ReleaseView,
    ReprocessSelection,
    Sighting,
)

T = TypeVar("T")
HOUR = 3600
_MAX_REPOSITORIES = 100


class MemoryReads:
    capabilities = ReadCapabilities(search=True, repository_contains=True, release_chart=True)

    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None:
        with self._db.transaction() as db:
            seq = db.seq_of.get(delivery_id)
            if seq is None:
                return None
            hooks = db.sightings.get(delivery_id, {}).values()
            sightings = tuple(
                Sighting(s.hook_id or None, s.first_at, s.last_at, s.count, s.same_body, s.secret_index)
                for s in sorted(hooks, key=lambda s: (s.first_at, s.hook_id))
            )
            return _delivery_view(db.deliveries[seq], sightings, db.release_of.get(delivery_id))

    async def hooks_seen(self, delivery_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        seen: dict[str, frozenset[str]] = {}
        with self._db.transaction() as db:
            for delivery_id in delivery_ids:
                hooks = set(db.sightings.get(delivery_id, {}))
                seq = db.seq_of.get(delivery_id)
                if seq is not None:
                    hooks.add(db.deliveries[seq].delivery.hook_id or "")
                if hooks:
                    seen[delivery_id] = frozenset(hooks)
        return seen

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        before = _decode_int(query.cursor) if query.cursor else None
        wanted = {
            "event": query.event,
            "action": query.action,
            "repository": query.repository,
            "sender": query.sender,
            "delivery_id": query.delivery_id,
        }
        filters = {name: value for name, value in wanted.items() if value is not None}

        with self._db.transaction() as db:

            def matches(row: EventRow) -> bool:
                if query.status is not None and row.status != query.status:
                    return False
                if query.since is not None and row.received_at < query.since:
                    return False
                if query.until is not None and row.received_at >= query.until:
                    return False
                if (query.destination or query.forward_status) and not any(
                    query.destination in (None, job.destination) and query.forward_status in (None, job.status)
                    for job in _jobs(db, row.seq)
                ):
                    return False
                return all(getattr(row.record, name) == value for name, value in filters.items())

            seqs = sorted((seq for seq in db.events if before is None or seq < before), reverse=True)
            rows = _first(matches, (db.events[seq] for seq in seqs), page_size(query.limit) + 1)
            views = [_event_view(db, r) for r in rows]
        return page_of(views, page_size(query.limit), lambda view: encode_cursor([view.seq]))

    async def deliveries_per_hour(self, *, since: float) -> Sequence[HourCounts]:
        with self._db.transaction() as db:
            counts: dict[int, list[int]] = {}
            for row in db.deliveries.values():
                if row.delivery.received_at >= since:
                    counts.setdefault(int(row.delivery.received_at // HOUR), [0, 0, 0])[0] += 1
            for event in db.events.values():
                column = {DeliveryStatus.PROCESSED: 1, DeliveryStatus.FAILED: 2}.get(event.status)
                if event.received_at >= since and column is not None:
                    counts.setdefault(int(event.received_at // HOUR), [0, 0, 0])[column] += 1
        return [HourCounts(float(h * HOUR), *counts[h]) for h in sorted(counts)]

    async def get_release(self, release_id: int) -> ReleaseView | None:
        with self._db.transaction() as db:
            row = db.releases.get(release_id)
            return None if row is None else ReleaseView(row.record, row.first_seen_at, row.updated_at, _sources(row))

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]:
        after: tuple[str, int] | None = None
        if query.cursor:
            last_sort_at, last_id = decode_cursor(query.cursor, types=(str, int))
            if not isinstance(last_sort_at, str) or not isinstance(last_id, int):
                raise InvalidCursor("cursor is not valid")
            after = (last_sort_at, last_id)

        def matches(row: ReleaseRow) -> bool:
            content, key = row.record.content, _sort_key(row)
            return (
                (query.repository is None or content.repository == query.repository)
                and (query.state is None or row.record.state == query.state)
                and (query.prerelease is None or content.prerelease == query.prerelease)
                and (query.since is None or key[0] >= query.since)
                and (query.until is None or key[0] < query.until)
                and (after is None or key < after)
                and (
                    query.search is None or search.matches(list(search.release_fields(content).values()), query.search)
                )
            )

        with self._db.transaction() as db:
            rows = sorted(db.releases.values(), key=_sort_key, reverse=True)
            found = _first(matches, rows, page_size(query.limit) + 1)
            # A page carries no history (as the SQL backends' pages): `get_release` has it.
            views = [
                ReleaseView(replace(r.record, history=()), r.first_seen_at, r.updated_at, _sources(r)) for r in found
            ]
        return page_of(views, page_size(query.limit), _release_cursor)

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        limit = max(1, min(limit, _MAX_REPOSITORIES))
        with self._db.transaction() as db:
            names = sorted({name for r in db.releases.values() if (name := r.record.content.repository) is not None})
        chosen = [name for name in names if name.startswith(text)][:limit]
        if len(chosen) < limit and text:
            folded = text.lower()  # as SQL's LIKE: case-insensitive
            chosen += [name for name in names if folded in name.lower() and name not in chosen][: limit - len(chosen)]
        return chosen

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        with self._db.transaction() as db:
            times = [_sort_key(r)[0] for r in db.releases.values() if repository in (None, r.record.content.repository)]
        newest = max(times, default="")
        return newest or None

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        days: dict[str, int] = {}
        with self._db.transaction() as db:
            for row in db.releases.values():
                at = _sort_key(row)[0]
                if at >= since and repository in (None, row.record.content.repository):
                    days[at[:10]] = days.get(at[:10], 0) + 1
        return days

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        last = _decode_int(after) if after else None
        size = max(1, limit)

        def matches(row: DeliveryRow) -> bool:
            d = row.delivery
            return (
                (selection.delivery_id is None or d.delivery_id == selection.delivery_id)
                and (selection.since is None or d.received_at >= selection.since)
                and (not selection.failed_only or row.status is DeliveryStatus.FAILED)
            )

        with self._db.transaction() as db:
            seqs = sorted(seq for seq in db.deliveries if last is None or seq > last)
            rows = _first(matches, (db.deliveries[seq] for seq in seqs), size + 1)
            items = [row.delivery for row in rows]
        return page_of(items, size, lambda d: encode_cursor([d.seq]))

    async def ping(self) -> None:
        with self._db.transaction():
            pass


def _delivery_view(row: DeliveryRow, sightings: tuple[Sighting, ...], release_id: int | None) -> DeliveryView:
    d = row.delivery
    return DeliveryView(
        seq=d.seq,
        delivery_id=d.delivery_id,
        event=d.event,
        status=row.status,
        headers=dict(d.headers),
        body=d.body,
        content_kind=d.content_kind.value,
        secret_index=d.secret_index,
        received_at=d.received_at,
        processed_at=row.processed_at,
        attempts=row.recorded_attempts,
        error=row.error,
        hook_id=d.hook_id,
        sightings=sightings,
        release_id=release_id,
    )


def _jobs(db: MemoryDatabase, seq: int) -> list[JobRow]:
    return sorted((j for j in db.jobs.values() if j.delivery_seq == seq), key=lambda j: j.id)


def _event_view(db: MemoryDatabase, row: EventRow) -> EventView:
    """An event with its forwards (the newest generation per destination) and the release it changed."""
    forwards: dict[str, ForwardOutcome] = {}
    for job in sorted(_jobs(db, row.seq), key=lambda j: (j.destination, j.generation)):
        forwards[job.destination] = ForwardOutcome(job.destination, job.status, job.last_status_code, job.attempts)
    release = None
    release_id = db.release_of.get(row.record.delivery_id)
    if release_id is not None and release_id in db.releases:
        content = db.releases[release_id].record.content
        release = ReleaseRef(release_id, content.repository, content.tag)
    return EventView(
        row.seq, row.record, row.status, row.received_at, row.processed_at, row.error, tuple(forwards.values()), release
    )


def _first(matches: Callable[[T], bool], rows: Iterable[T], count: int) -> list[T]:
    found: list[T] = []
    for row in rows:
        if matches(row):
            found.append(row)
            if len(found) >= count:
                break
    return found


def _decode_int(cursor: str) -> int:
    (value,) = decode_cursor(cursor, types=(int,))
    if not isinstance(value, int):
        raise InvalidCursor("cursor is not valid")
    return value


def _sort_key(row: ReleaseRow) -> tuple[str, int]:
    return sort_at(row.record.content), row.record.release_id


def _sources(row: ReleaseRow) -> frozenset[str]:
    return frozenset(entry.source for entry in row.record.history)


def _release_cursor(view: ReleaseView) -> str:
    return encode_cursor([sort_at(view.record.content), view.record.release_id])
