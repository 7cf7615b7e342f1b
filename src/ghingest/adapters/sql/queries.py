"""Read queries as SQLAlchemy Core statements, shared by every SQL backend, and the rows' mapping to views."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import orjson
import sqlalchemy as sa

from ghingest.adapters.sql.schema import (
    deliveries,
    delivery_sightings,
    delivery_states,
    events,
    forward_jobs,
    release_changes,
    releases,
)
from ghingest.adapters.sql.where import Where
from ghingest.core.delivery import ContentKind
from ghingest.core.events import EventRecord
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.pagination import Page, decode_cursor, encode_cursor, page_of, page_size
from ghingest.core.processing import StoredDelivery
from ghingest.core.releases import (
    ChangeOrder,
    HistoryEntry,
    ReleaseChange,
    ReleaseContent,
    ReleaseRecord,
    ReleaseState,
)
from ghingest.core.sources import POLL_DELIVERY_PREFIX, POLL_SOURCE, WEBHOOK_SOURCE
from ghingest.core.states import DeliveryStatus
from ghingest.ports import (
    DeliveryView,
    EventQuery,
    EventView,
    ForwardOutcome,
    HourCounts,
    ReleaseQuery,
    ReleaseRef,
    ReleaseView,
    ReprocessSelection,
    Sighting,
)


class MappingRow(Protocol):
    """A row that maps column names to values (a SQLAlchemy `Row`; the PostgreSQL adapter's `MappedRow`)."""

    @property
    def _mapping(self) -> Mapping[Any, Any]: ...


def select_delivery(delivery_id: str) -> sa.Select[Any]:
    return (
        sa.select(
            deliveries,
            *(c for c in delivery_states.c if c.name not in ("seq", "size")),
            release_changes.c.release_id,
        )
        .join(delivery_states, delivery_states.c.seq == deliveries.c.seq)
        .outerjoin(release_changes, release_changes.c.delivery_id == deliveries.c.delivery_id)
        .where(deliveries.c.delivery_id == delivery_id)
    )


def select_sightings(delivery_id: str) -> sa.Select[Any]:
    return (
        sa.select(delivery_sightings)
        .where(delivery_sightings.c.delivery_id == delivery_id)
        .order_by(delivery_sightings.c.first_at)
    )


def sighting(row: MappingRow) -> Sighting:
    m = row._mapping
    return Sighting(
        hook_id=m["hook_id"] or None,
        first_at=m["first_at"],
        last_at=m["last_at"],
        count=m["count"],
        same_body=None if m["same_body"] is None else bool(m["same_body"]),
        secret_index=m["secret_index"],
    )


IN_CHUNK = 500  # ids per `IN (...)`: well inside SQLite's bound-parameter limit, one statement per page of ids


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    """`items` (deduplicated, in their order) in slices of at most `size`."""
    unique = list(dict.fromkeys(items))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def select_hooks_seen(delivery_ids: Sequence[str]) -> sa.CompoundSelect[Any]:
    """(delivery id, hook id) of each recorded delivery among `delivery_ids` and of each of their sightings ('' for
    none): both by their delivery id's index. Sightings count without their delivery, which behind a broker's inbox
    is recorded only with its first outcome."""
    recorded = sa.select(deliveries.c.delivery_id, sa.func.coalesce(deliveries.c.hook_id, "").label("hook_id"))
    sighted = sa.select(delivery_sightings.c.delivery_id, delivery_sightings.c.hook_id)
    return sa.union_all(
        recorded.where(deliveries.c.delivery_id.in_(delivery_ids)),
        sighted.where(delivery_sightings.c.delivery_id.in_(delivery_ids)),
    )


def hooks_seen_of(rows: Iterable[Any]) -> dict[str, frozenset[str]]:
    """`select_hooks_seen`'s rows (of one or more chunks) as `Reads.hooks_seen` answers them."""
    seen: dict[str, set[str]] = {}
    for delivery_id, hook_id in rows:
        seen.setdefault(delivery_id, set()).add(hook_id)
    return {delivery_id: frozenset(hooks) for delivery_id, hooks in seen.items()}


def delivery_view(row: MappingRow, sightings: Sequence[Sighting] = ()) -> DeliveryView:
    m = row._mapping
    return DeliveryView(
        seq=m["seq"],
        delivery_id=m["delivery_id"],
        event=m["event"],
        status=DeliveryStatus(m["status"]),
        headers=orjson.loads(m["headers"]),
        body=bytes(m["body"]),
        content_kind=m["content_kind"],
        secret_index=m["secret_index"],
        received_at=m["received_at"],
        processed_at=m["processed_at"],
        attempts=m["attempts"],
        error=m["error"],
        hook_id=m["hook_id"],
        sightings=tuple(sightings),
        release_id=m["release_id"],
    )


# From this many matching forward jobs on, the events walk drives the forward filter: fetching M matching seqs costs
# about M index entries, walking the events about page * events / M probes; they cross near sqrt(page * events),
# some 7,000 on a million events (measured: 4,500 dead letters of 1M events, 2 ms listed against 18 ms walked).
FORWARD_FILTER_MANY = 10_000


def has_forward_filter(query: EventQuery) -> bool:
    return query.destination is not None or query.forward_status is not None


def _matching_jobs(query: EventQuery, columns: Sequence[sa.ColumnElement[Any]]) -> sa.Select[Any]:
    """Forward jobs of the query's destination and status: a range of `ix_forward_jobs_destination_status_seq`
    (`ix_forward_jobs_status_seq` without a destination)."""
    statement = sa.select(*columns)
    if query.destination is not None:
        statement = statement.where(forward_jobs.c.destination == query.destination)
    if query.forward_status is not None:
        statement = statement.where(forward_jobs.c.status == query.forward_status.value)
    return statement


def count_forward_matches(query: EventQuery, *, cap: int = FORWARD_FILTER_MANY) -> sa.Select[Any]:
    """How many forward jobs the query's forward filter matches, counting no further than `cap`."""
    jobs = _matching_jobs(query, [forward_jobs.c.delivery_seq]).limit(cap)
    return sa.select(sa.func.count()).select_from(jobs.subquery())


def _cursor_seq(cursor: str) -> Any:
    """An event page's cursor: the last seq shown (an int: `decode_cursor` checks its type)."""
    (last_seq,) = decode_cursor(cursor, types=(int,))
    return last_seq


def select_events(query: EventQuery, *, many_forwards: bool = True) -> sa.Select[Any]:
    """A page of events newest first, each with the release it changed (one probe by delivery id per row of the
    page). A forward filter with `many_forwards` (`count_forward_matches` reached its cap) is an EXISTS probe by
    (delivery_seq, destination) per event walked, which soon finds a page; with few matches, the matching
    forward jobs are looked up first (a short list of seqs) and their events fetched by seq."""
    statement = sa.select(events)
    for column, value in (
        (events.c.event, query.event),
        (events.c.action, query.action),
        (events.c.repository, query.repository),
        (events.c.status, query.status),
        (events.c.sender, query.sender),
        (events.c.delivery_id, query.delivery_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.since is not None:
        statement = statement.where(events.c.received_at >= query.since)
    if query.until is not None:
        statement = statement.where(events.c.received_at < query.until)
    if has_forward_filter(query):
        if many_forwards:
            jobs = _matching_jobs(query, [sa.literal_column("1")]).where(forward_jobs.c.delivery_seq == events.c.seq)
            statement = statement.where(jobs.exists())
        else:
            jobs = _matching_jobs(query, [forward_jobs.c.delivery_seq])
            if query.cursor:
                jobs = jobs.where(forward_jobs.c.delivery_seq < _cursor_seq(query.cursor))
            statement = statement.where(events.c.seq.in_(jobs))
    if query.cursor:
        statement = statement.where(events.c.seq < _cursor_seq(query.cursor))
    page = statement.order_by(events.c.seq.desc()).limit(page_size(query.limit) + 1).subquery("page")
    change, release = release_changes.alias("rc"), releases.alias("r")
    return (
        sa.select(
            page, change.c.release_id, release.c.repository.label("release_repository"), release.c.tag.label("tag")
        )
        .select_from(
            page.outerjoin(change, change.c.delivery_id == page.c.delivery_id).outerjoin(
                release, release.c.id == change.c.release_id
            )
        )
        .order_by(page.c.seq.desc())
    )


def event_view(row: MappingRow) -> EventView:
    m = row._mapping
    release = None
    if m["release_id"] is not None:
        release = ReleaseRef(release_id=m["release_id"], repository=m["release_repository"], tag=m["tag"])
    return EventView(
        seq=m["seq"],
        record=EventRecord(
            delivery_id=m["delivery_id"],
            event=m["event"],
            action=m["action"],
            repository=m["repository"],
            organization=m["organization"],
            sender=m["sender"],
            installation_id=m["installation_id"],
            hook_id=m["hook_id"],
            shape_warning=m["shape_warning"],
        ),
        status=DeliveryStatus(m["status"]),
        received_at=m["received_at"],
        processed_at=m["processed_at"],
        error=m["error"],
        release=release,
    )


def select_forward_outcomes(seqs: Sequence[int]) -> sa.Select[Any]:
    """The forward jobs of a page's events, by the (delivery_seq, destination, generation) unique index."""
    j = forward_jobs.c
    return (
        sa.select(j.delivery_seq, j.destination, j.status, j.last_status_code, j.attempts)
        .where(j.delivery_seq.in_(seqs))
        .order_by(j.delivery_seq, j.destination, j.generation)
    )


def with_forwards(views: Sequence[EventView], rows: Iterable[Any]) -> list[EventView]:
    """`views` with their forwards (`select_forward_outcomes`' rows): the newest generation per destination."""
    outcomes: dict[int, dict[str, ForwardOutcome]] = {}
    for seq, destination, status, code, attempts in rows:  # generations in order: the newest stays
        outcomes.setdefault(seq, {})[destination] = ForwardOutcome(destination, ForwardStatus(status), code, attempts)
    return [replace(v, forwards=tuple(outcomes[v.seq].values())) if v.seq in outcomes else v for v in views]


HOUR = 3600


def select_waiting_per_hour(since: float, hour: Callable[[Any], Any]) -> sa.Select[Any]:
    """Deliveries received from `since` that wait (or retry) per hour: the few `received` rows of
    `delivery_states`, by their delivery's time. Every other delivery has its event (processed, failed)."""
    h = hour(deliveries.c.received_at).label("h")
    return (
        sa.select(h, sa.func.count())
        .select_from(delivery_states.join(deliveries, deliveries.c.seq == delivery_states.c.seq))
        # `+ 0`: not by the time's index (the window's every delivery), but from the few waiting ones
        .where(delivery_states.c.status == DeliveryStatus.RECEIVED.value, deliveries.c.received_at + 0 >= since)
        .group_by(h)
    )


def select_outcomes_per_hour(since: float, hour: Callable[[Any], Any]) -> sa.Select[Any]:
    """Events (processed or failed deliveries) per hour of receipt and status from `since`: a range of
    `ix_events_received_status`, read from the index."""
    h = hour(events.c.received_at).label("h")
    return (
        sa.select(h, events.c.status, sa.func.count()).where(events.c.received_at >= since).group_by(h, events.c.status)
    )


def hours_of(outcomes: Iterable[Any], waiting: Iterable[Any]) -> list[HourCounts]:
    """`select_outcomes_per_hour`'s and `select_waiting_per_hour`'s rows as `Reads.deliveries_per_hour` answers:
    received = processed + failed + waiting."""
    counts: dict[int, list[int]] = {}
    for h, status, n in outcomes:
        column = {DeliveryStatus.PROCESSED.value: 1, DeliveryStatus.FAILED.value: 2}.get(status)
        if column is not None:
            row = counts.setdefault(int(h), [0, 0, 0])
            row[0] += int(n)
            row[column] += int(n)
    for h, n in waiting:
        counts.setdefault(int(h), [0, 0, 0])[0] += int(n)
    return [HourCounts(float(h * HOUR), *counts[h]) for h in sorted(counts)]


def event_cursor(view: EventView) -> str:
    return encode_cursor([view.seq])


# A page's sources (`release_view`): which sources its rows' history entries have, as bits (1: webhook, 2: poll),
# one probe by the release's index on `release_changes` per row of the page, whatever plan found the page. Over the
# page as a derived table, so that it runs for the page's rows only (on the whole query, SQLite runs it before a
# sort, for every match), and a scalar subquery, which PostgreSQL never turns into a hash of all of
# `release_changes` (as it may an EXISTS, when it misjudges how many rows a page has). Fixed text: the PostgreSQL
# adapter compiles every statement anew, and the same in SQLAlchemy's expressions took longer to compile than the
# query takes to run.
SOURCE_BITS = {WEBHOOK_SOURCE: 1, POLL_SOURCE: 2}
_PAGE_WITH_SOURCES: tuple[sa.ColumnElement[Any], ...] = (
    sa.literal_column("page.*"),
    sa.literal_column(
        f"(SELECT sum(DISTINCT CASE WHEN substr(c.delivery_id, 1, {len(POLL_DELIVERY_PREFIX)})"  # noqa: S608 - fixed text
        f" = '{POLL_DELIVERY_PREFIX}' THEN {SOURCE_BITS[POLL_SOURCE]} ELSE {SOURCE_BITS[WEBHOOK_SOURCE]} END)"
        " FROM release_changes AS c WHERE c.release_id = page.id)"
    ).label("sources"),
)
_PAGE_ORDER: tuple[sa.UnaryExpression[Any], ...] = (
    sa.literal_column("page.sort_at").desc(),
    sa.literal_column("page.id").desc(),
)

SEARCH_MANY_MATCHES = 1000  # from this many matches on, a search walks the sort index (`select_releases`)


def select_releases(
    query: ReleaseQuery,
    *,
    many_matches: bool = False,
    search: Callable[[str], sa.ColumnElement[bool]] | None = None,
) -> sa.Select[Any]:
    """A page of releases newest first, each with its sources (`_PAGE_WITH_SOURCES`: one probe per row of the
    page); `releases_matching` finds them."""
    page = releases_matching(query, many_matches=many_matches, search=search).limit(page_size(query.limit) + 1)
    return sa.select(*_PAGE_WITH_SOURCES).select_from(page.subquery("page")).order_by(*_PAGE_ORDER)


def releases_matching(
    query: ReleaseQuery,
    *,
    many_matches: bool = False,
    search: Callable[[str], sa.ColumnElement[bool]] | None = None,
) -> sa.Select[Any]:
    """Every release the query matches after its cursor, newest first. A search with `many_matches` tests
    membership while walking an index in sort order (`id + 0` keeps SQLite from driving the query by id instead),
    which stops after one page; with few matches, SQLite fetches the matches by id and sorts them, which is cheaper
    than walking. `search`: the dialect's condition for a search text (default: SQLite's FTS5 index)."""
    statement = sa.select(releases)
    if query.repository is not None:
        statement = statement.where(releases.c.repository == query.repository)
    if query.state is not None:
        statement = statement.where(releases.c.state == query.state)
    if query.prerelease is not None:
        statement = statement.where(releases.c.prerelease == query.prerelease)
    if query.since is not None:
        statement = statement.where(releases.c.sort_at >= query.since)
    if query.until is not None:
        statement = statement.where(releases.c.sort_at < query.until)
    if query.search and search is not None:
        statement = statement.where(search(query.search))
    elif query.search:
        column = releases.c.id + sa.literal_column("0") if many_matches else releases.c.id
        statement = statement.where(column.in_(_search_ids(query.search)))
    if query.cursor:
        sort_at, release_id = decode_cursor(query.cursor, types=(str, int))
        statement = statement.where(sa.tuple_(releases.c.sort_at, releases.c.id) < (sort_at, release_id))
    return statement.order_by(releases.c.sort_at.desc(), releases.c.id.desc())


def select_repositories(text: str, *, limit: int, contains: bool, ilike: bool = False) -> sa.Select[Any]:
    """Distinct repository names starting with (or, with `contains`, containing) `text`, walking the
    (repository, sort_at, id) index in order and stopping after `limit` names. Containing is case-insensitive:
    SQLite's LIKE is (for ASCII); `ilike` where the dialect's is not (PostgreSQL, served by a trigram index)."""
    column = releases.c.repository
    statement = sa.select(column).distinct().where(column.is_not(None))
    if contains:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        match = column.ilike if ilike else column.like
        statement = statement.where(match(f"%{escaped}%", escape="\\"))
    elif text:
        statement = statement.where(column >= text, column < text + "\U0010ffff")
    return statement.order_by(column).limit(max(1, min(limit, 100)))


def typeahead(starting: Sequence[str], containing: Sequence[str], limit: int) -> list[str]:
    """Names starting with the text first, then those containing it, up to `limit` (`select_repositories`)."""
    names = list(starting)
    return names + [name for name in containing if name not in names][: max(0, limit - len(names))]


def select_newest_release_at(repository: str | None) -> sa.Select[Any]:
    statement = sa.select(sa.func.max(releases.c.sort_at))  # one index probe: '' (no time) sorts lowest
    if repository is not None:
        statement = statement.where(releases.c.repository == repository)
    return statement


def newest_of(rows: Sequence[Any]) -> str | None:
    """`select_newest_release_at`'s answer: None when there is no release (or none with a time)."""
    value = rows[0][0] if rows else None
    return str(value) if value else None


def days_of(rows: Sequence[MappingRow]) -> dict[str, int]:
    """`select_releases_by_day`'s answer: releases per `YYYY-MM-DD`."""
    return {str(row._mapping["day"]): int(row._mapping["n"]) for row in rows}


def select_releases_by_day(since: str, repository: str | None) -> sa.Select[Any]:
    """Releases per day from `since` on: a range on an index whose leading columns are (repository,) sort_at."""
    day = sa.func.substr(releases.c.sort_at, 1, 10).label("day")
    statement = sa.select(day, sa.func.count().label("n")).where(releases.c.sort_at >= since)
    if repository is not None:
        statement = statement.where(releases.c.repository == repository)
    return statement.group_by(day)


def fts_query(text: str) -> str:
    """A user's search text as an FTS5 query: every word must match, the last one as a prefix. FTS5 reads its query
    as a C string, so a NUL would end it inside a quoted word ("unterminated string"): NUL separates words."""
    words = [word.replace('"', '""') for word in text.replace("\x00", " ").split() if word.strip('"')]
    if not words:
        return '""'
    return " ".join(f'"{word}"' for word in words[:-1]) + (" " if len(words) > 1 else "") + f'"{words[-1]}"*'


def _search_ids(text: str) -> sa.Select[Any]:
    """Ids of releases whose tag, name or notes match (SQLite FTS5 index `releases_fts`)."""
    return (
        sa.select(sa.literal_column("rowid"))
        .select_from(sa.table("releases_fts"))
        .where(sa.text("releases_fts MATCH :fts").bindparams(fts=fts_query(text)))
    )


def count_search_matches(text: str, *, cap: int) -> sa.Select[Any]:
    """How many releases match `text`, counting no further than `cap` (a bounded probe of the FTS index)."""
    return sa.select(sa.func.count()).select_from(_search_ids(text).limit(cap).subquery())


def release_cursor(view: ReleaseView) -> str:
    return encode_cursor([sort_at(view.record.content), view.record.release_id])


def sort_at(content: ReleaseContent) -> str:
    return content.published_at or content.created_at or ""


def content_of(row_mapping: Any) -> ReleaseContent:
    m = row_mapping
    return ReleaseContent(
        repository=m["repository"],
        tag=m["tag"],
        name=m["name"],
        author_login=m["author_login"],
        author_avatar_url=m["author_avatar_url"],
        draft=bool(m["draft"]),
        prerelease=bool(m["prerelease"]),
        created_at=m["created_at"],
        published_at=m["published_at"],
        html_url=m["html_url"],
        body=m["body"],
    )


def release_view(row: MappingRow, history: Sequence[HistoryEntry] | None = None) -> ReleaseView:
    """A release with its `history` (`select_release_changes`), or a row of a page (`select_releases`), which
    carries no history but says whether it has entries of each source."""
    m = row._mapping
    record = ReleaseRecord(
        release_id=m["id"],
        state=ReleaseState(m["state"]),
        content=content_of(m),
        content_order=ChangeOrder(m["content_ts"], m["content_seq"]),
        history=tuple(history or ()),
    )
    if history is not None:
        sources = frozenset(entry.source for entry in history)
    else:
        sources = frozenset(source for source, bit in SOURCE_BITS.items() if (m["sources"] or 0) & bit)
    return ReleaseView(record=record, first_seen_at=m["first_seen_at"], updated_at=m["updated_at"], sources=sources)


def select_release(release_id: int) -> sa.Select[Any]:
    return sa.select(releases).where(releases.c.id == release_id)


def select_release_changes(release_id: int) -> sa.Select[Any]:
    return (
        sa.select(release_changes)
        .where(release_changes.c.release_id == release_id)
        .order_by(release_changes.c.order_ts, release_changes.c.order_seq, release_changes.c.delivery_id)
    )


def release_change_of(row_mapping: Any) -> ReleaseChange:
    m = row_mapping
    return ReleaseChange(
        release_id=m["release_id"],
        delivery_id=m["delivery_id"],
        action=m["action"],
        order=ChangeOrder(m["order_ts"], m["order_seq"]),
        received_at=m["received_at"],
        content=ReleaseContent(**orjson.loads(m["content"])),
    )


def history_entry(row: MappingRow) -> HistoryEntry:
    m = row._mapping
    return HistoryEntry(
        delivery_id=m["delivery_id"],
        action=m["action"],
        order=ChangeOrder(m["order_ts"], m["order_seq"]),
        received_at=m["received_at"],
    )


def stored_delivery(row: Any, attempts: int | None = None) -> StoredDelivery:
    """A delivery as stored: (seq, delivery_id, event, hook_id, content_kind, headers, body, received_at,
    secret_index[, attempts]); `attempts` when the row does not end with them."""
    seq, delivery_id, event, hook_id, kind, headers, body, received_at, secret_index, *rest = row
    return StoredDelivery(
        seq=seq,
        delivery_id=delivery_id,
        event=event,
        hook_id=hook_id,
        content_kind=ContentKind(kind),
        headers=orjson.loads(headers),
        body=bytes(body),
        received_at=received_at,
        secret_index=secret_index,
        attempts=attempts if attempts is not None else int(rest[0]),
    )


OLDEST_WAITING = (
    "SELECT d.received_at FROM delivery_states s JOIN deliveries d ON d.seq = s.seq"
    " WHERE s.status = 'received' ORDER BY s.seq LIMIT 1"
)

# One row that touches every table the read side queries, and the schema's revision.
READINESS = (
    "SELECT (SELECT version_num FROM alembic_version), (SELECT 1 FROM deliveries LIMIT 1),"
    " (SELECT 1 FROM events LIMIT 1), (SELECT 1 FROM releases LIMIT 1), (SELECT 1 FROM forward_jobs LIMIT 1)"
)
_TO_REPROCESS = (
    "SELECT d.seq, d.delivery_id, d.event, d.hook_id, d.content_kind, d.headers, d.body, d.received_at,"
    " d.secret_index, s.attempts FROM deliveries d JOIN delivery_states s ON s.seq = d.seq WHERE "
)


def reprocess_query(selection: ReprocessSelection, *, after: str | None, limit: int) -> tuple[str, list[Any]]:
    """The deliveries `selection` names, oldest first, after the keyset cursor `after`: `limit + 1` rows (`?`
    placeholders) of `stored_delivery`'s shape."""
    where = Where()
    where.add("d.delivery_id = ?", selection.delivery_id)
    where.add("d.received_at >= ?", selection.since)
    where.when(selection.failed_only, "s.status = 'failed'")
    if after is not None:
        (last,) = decode_cursor(after, types=(int,))
        where.add("d.seq > ?", last)
    return _TO_REPROCESS + where.sql() + " ORDER BY d.seq LIMIT ?", [*where.params, limit + 1]


def reprocess_page(deliveries: list[StoredDelivery], limit: int) -> Page[StoredDelivery]:
    return page_of(deliveries, limit, lambda d: encode_cursor([d.seq]))
