"""The read side on DynamoDB: every query of the read API and the dashboard through the overloaded indexes
(docs/aws/dynamodb.md, "Access patterns"), in the memory backend's orders and with its keyset cursors
(`core.pagination`), so that a page looks the same on every backend.

- A list reads one index partition in sort-key order, from the cursor's key on, page after page, until it has one
  more match than the page holds (the next cursor); what no key narrows (action, status, state, prerelease, a
  time range's exact ends) is a filter expression. The sharded "all" partitions (`EVTS#n`, `DLVS#n`) are read one
  query per shard, merged lazily by their sort key.
- Events pick the most selective partition: by repository (gsi3), else by type (gsi2), else all (gsi1).
- No full-text search and no "repository name contains" (`ReadCapabilities`): DynamoDB has no index for them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.items import event_record, sighted_hooks, sighting, stored_delivery, stored_release
from ghingest.adapters.aws.job_items import job_ids_of
from ghingest.adapters.aws.payloads import body_of
from ghingest.adapters.aws.table import TableContext, batch_get, float_or_none, from_item, get, key, query, to_item
from ghingest.core.forward_states import ForwardStatus
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
)

_MAX_REPOSITORIES = 100
_QUERY_PAGE = 100  # items a Query reads per request while a filter skips some


@dataclass(frozen=True, slots=True)
class _Range:
    """A sort-key range: `after`/`before` exclusive (a cursor), `at_least` inclusive (a `since`)."""

    after: str | None = None
    before: str | None = None
    at_least: str | None = None


@dataclass(frozen=True, slots=True)
class _Filter:
    equal: Mapping[str, Any]  # attribute -> value
    at_least: Mapping[str, Any] | None = None  # attribute -> inclusive lower bound
    below: Mapping[str, Any] | None = None  # attribute -> exclusive upper bound


def _items(
    db: TableContext, index: str | None, partition: str, span: _Range, *, newest_first: bool, where: _Filter | None
) -> Iterator[dict[str, Any]]:
    """The items of one partition (of the table or of an index) in sort-key order within `span`, lazily."""
    pk, sk = ("pk", "sk") if index is None else (f"{index}pk", f"{index}sk")
    names = {"#pk": pk, "#sk": sk}
    bound: dict[str, Any] = {":pk": partition}
    low, high = span.at_least if span.at_least is not None else span.after, span.before
    if low is not None and high is not None:
        condition = "#sk BETWEEN :low AND :high"
        bound |= {":low": low, ":high": high}
    elif high is not None:
        condition, bound[":high"] = "#sk < :high", high
    elif low is not None:
        condition, bound[":low"] = ("#sk >= :low" if span.at_least is not None else "#sk > :low"), low
    else:
        condition = ""
        del names["#sk"]  # DynamoDB refuses a name no expression uses
    arguments: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk" + (f" AND {condition}" if condition else ""),
        "ScanIndexForward": not newest_first,
        "Limit": _QUERY_PAGE,
    }
    if index is not None:
        arguments["IndexName"] = index
    else:
        arguments["ConsistentRead"] = True
    if where is not None:
        clauses = []
        for number, (op, terms) in enumerate((("=", where.equal), (">=", where.at_least), ("<", where.below))):
            for position, (name, wanted) in enumerate((terms or {}).items()):
                tag = f"f{number}{position}"
                names[f"#{tag}"], bound[f":{tag}"] = name, wanted
                clauses.append(f"#{tag} {op} :{tag}")
        if clauses:
            arguments["FilterExpression"] = " AND ".join(clauses)
    arguments["ExpressionAttributeNames"] = names
    arguments["ExpressionAttributeValues"] = to_item(bound)
    for attrs in query(db, **arguments):
        if attrs[sk] not in (span.before, span.after):  # BETWEEN is inclusive
            yield attrs


def _matches(attrs: Mapping[str, Any], where: _Filter, before: int | None) -> bool:
    """Whether an item read by its key passes what a query would have filtered (`_items`)."""
    if before is not None and int(attrs["seq"]) >= before:
        return False
    if any(attrs.get(name) != wanted for name, wanted in where.equal.items()):
        return False
    if any(attrs.get(name) is None or attrs[name] < low for name, low in (where.at_least or {}).items()):
        return False
    return not any(attrs.get(name) is None or attrs[name] >= high for name, high in (where.below or {}).items())


def _int_cursor(cursor: str) -> int:
    (number,) = decode_cursor(cursor, types=(int,))
    if not isinstance(number, int) or number < 0:
        raise InvalidCursor("cursor is not valid")
    return number


class AwsReads:
    # No index finds events by their forwards, nor deliveries by their hour: `event_forward_filters`, `activity`.
    capabilities = ReadCapabilities(
        search=False, repository_contains=False, release_chart=True, event_forward_filters=False, activity=False
    )

    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def get_delivery(self, delivery_id: str) -> DeliveryView | None:
        return await self._db.run("reads.get_delivery", self._get_delivery, delivery_id)

    async def hooks_seen(self, delivery_ids: Sequence[str]) -> Mapping[str, frozenset[str]]:
        return await self._db.run("reads.hooks_seen", self._hooks_seen, delivery_ids)

    async def list_events(self, query: EventQuery) -> Page[EventView]:
        if query.destination is not None or query.forward_status is not None:
            raise NotImplementedError("no index finds events by their forwards (ReadCapabilities)")
        before = _int_cursor(query.cursor) if query.cursor else None
        return await self._db.run("reads.list_events", self._list_events, query, before)

    async def deliveries_per_hour(self, *, since: float) -> Sequence[HourCounts]:
        raise NotImplementedError("no index counts deliveries by hour (ReadCapabilities)")

    async def get_release(self, release_id: int) -> ReleaseView | None:
        if release_id < 0:
            return None
        return await self._db.run("reads.get_release", self._get_release, release_id)

    async def list_releases(self, query: ReleaseQuery) -> Page[ReleaseView]:
        before = None
        if query.cursor:
            last_at, last_id = decode_cursor(query.cursor, types=(str, int))
            if not isinstance(last_at, str) or not isinstance(last_id, int) or last_id < 0:
                raise InvalidCursor("cursor is not valid")
            before = keys.release_sort(last_at, last_id)
        return await self._db.run("reads.list_releases", self._list_releases, query, before)

    async def list_repositories(self, text: str, *, limit: int = 20) -> Sequence[str]:
        return await self._db.run("reads.list_repositories", self._repositories, text, max(1, min(limit, 100)))

    async def newest_release_at(self, *, repository: str | None = None) -> str | None:
        return await self._db.run("reads.newest_release_at", self._newest, repository)

    async def count_releases_by_day(self, *, since: str, repository: str | None = None) -> Mapping[str, int]:
        return await self._db.run("reads.count_releases_by_day", self._by_day, since, repository)

    async def deliveries_to_reprocess(
        self, selection: ReprocessSelection, *, after: str | None = None, limit: int = 500
    ) -> Page[StoredDelivery]:
        last = _int_cursor(after) if after else None
        return await self._db.run("reads.deliveries_to_reprocess", self._to_reprocess, selection, last, max(1, limit))

    async def ping(self) -> None:
        await self._db.run("reads.ping", self._ping)

    # --- blocking parts (on a thread) -----------------------------------------------------------------------------

    def _get_delivery(self, delivery_id: str) -> DeliveryView | None:
        parts = list(
            query(
                self._db,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=to_item({":pk": keys.delivery_pk(delivery_id)}),
                ConsistentRead=True,
            )
        )
        found = next((p for p in parts if p["sk"] == keys.DELIVERY_SK), None)
        if found is None:
            return None
        seen = [sighting(p) for p in parts if str(p["sk"]).startswith(keys.SIGHTING_PREFIX)]
        body = next((p for p in parts if p["sk"] == keys.BODY_SK), None)  # None: its TTL expired it
        d = stored_delivery(found, body_of(self._db, body))
        return DeliveryView(
            seq=d.seq,
            delivery_id=d.delivery_id,
            event=d.event,
            status=DeliveryStatus(found["status"]),
            headers=dict(d.headers),
            body=d.body,
            content_kind=d.content_kind.value,
            secret_index=d.secret_index,
            received_at=d.received_at,
            processed_at=float_or_none(found.get("processed_at")),
            attempts=int(found.get("attempts", 0)),
            error=found.get("error"),
            hook_id=d.hook_id,
            sightings=tuple(sorted(seen, key=lambda s: (s.first_at, s.hook_id or ""))),
            release_id=found.get("release_id"),
        )

    def _hooks_seen(self, delivery_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Each id's delivery item (its `hook_id`) and `HOOKS` item (its sightings'), in batches of 100 keys."""
        ids = list(dict.fromkeys(delivery_ids))
        seen: dict[str, set[str]] = {}
        for attrs in batch_get(self._db, [k for i in ids for k in (keys.delivery(i), keys.hooks_seen(i))]):
            delivery_id = str(attrs["pk"]).removeprefix(keys.delivery_pk(""))
            hooks = seen.setdefault(delivery_id, set())
            if attrs["sk"] == keys.DELIVERY_SK:
                hooks.add(str(attrs.get("hook_id") or ""))
            else:
                hooks |= sighted_hooks(attrs)
        return {delivery_id: frozenset(hooks) for delivery_id, hooks in seen.items() if hooks}

    def _list_events(self, query: EventQuery, before: int | None) -> Page[EventView]:
        equal = {
            "event": query.event,
            "action": query.action,
            "repository": query.repository,
            "status": query.status,
            "sender": query.sender,
            "delivery_id": query.delivery_id,
        }
        where = _Filter(
            {name: wanted for name, wanted in equal.items() if wanted is not None},
            at_least=None if query.since is None else {"received_at": query.since},
            below=None if query.until is None else {"received_at": query.until},
        )
        size = page_size(query.limit)
        if query.delivery_id is not None:  # one item, by its key
            found = get(self._db, keys.event(query.delivery_id))
            matched = [] if found is None or not _matches(found, where, before) else [found]
            return page_of(self._event_views(matched), size, lambda view: encode_cursor([view.seq]))
        if query.repository is not None:
            index, partitions = "gsi3", [keys.events_of_repository(query.repository)]
            del equal["repository"]
        elif query.event is not None:
            index, partitions = "gsi2", [keys.events_of_type(query.event)]
            del equal["event"]
        else:
            index, partitions = "gsi1", [keys.events_shard(n) for n in range(keys.SHARDS)]
        where = replace(where, equal={k: v for k, v in where.equal.items() if k in equal})
        span = _Range(before=None if before is None else keys.n20(before))
        streams = [_items(self._db, index, p, span, newest_first=True, where=where) for p in partitions]
        merged = heapq.merge(*streams, key=lambda attrs: int(attrs["seq"]), reverse=True)
        views = self._event_views(list(itertools.islice(merged, size + 1)))
        return page_of(views, size, lambda view: encode_cursor([view.seq]))

    def _event_views(self, found: Sequence[Mapping[str, Any]]) -> list[EventView]:
        """Events with their forwards (each delivery's job ids from its index partition: no IN on DynamoDB; then
        one batch of all their job items) and their releases (the deliveries' items name them; one batch of release
        items)."""
        ids = [str(a["delivery_id"]) for a in found]
        job_ids = [job_id for delivery_id in ids for job_id in job_ids_of(self._db, delivery_id)]
        jobs: dict[str, list[dict[str, Any]]] = {}
        for job in batch_get(self._db, [keys.job(i) for i in job_ids]):
            jobs.setdefault(str(job["delivery_id"]), []).append(job)
        release_of = {
            str(d["delivery_id"]): int(d["release_id"])
            for d in batch_get(self._db, [keys.delivery(i) for i in ids])
            if d.get("release_id") is not None
        }
        releases = {int(r["id"]): r for r in batch_get(self._db, [keys.release(i) for i in set(release_of.values())])}
        views = []
        for a in found:
            delivery_id = str(a["delivery_id"])
            forwards: dict[str, ForwardOutcome] = {}
            for job in sorted(
                jobs.get(delivery_id, ()), key=lambda j: (str(j["destination"]), int(j.get("generation", 0)))
            ):
                forwards[str(job["destination"])] = ForwardOutcome(
                    str(job["destination"]),
                    ForwardStatus(job["status"]),
                    None if job.get("last_status_code") is None else int(job["last_status_code"]),
                    int(job.get("attempts", 0)),
                )
            release_id = release_of.get(delivery_id)
            r = releases.get(release_id) if release_id is not None else None
            views.append(
                EventView(
                    seq=int(a["seq"]),
                    record=event_record(a),
                    status=DeliveryStatus(a["status"]),
                    received_at=float(a["received_at"]),
                    processed_at=float_or_none(a.get("processed_at")),
                    error=a.get("error"),
                    forwards=tuple(forwards.values()),
                    release=None
                    if r is None or release_id is None
                    else ReleaseRef(release_id, r.get("repository"), r.get("tag")),
                )
            )
        return views

    def _get_release(self, release_id: int) -> ReleaseView | None:
        attrs = get(self._db, keys.release(release_id))
        if attrs is None:
            return None
        stored = stored_release(attrs)
        return ReleaseView(stored.record, stored.first_seen_at, stored.updated_at, stored.sources)

    def _releases(
        self, repository: str | None, span: _Range, *, newest_first: bool, where: _Filter | None = None
    ) -> Iterator[dict[str, Any]]:
        if repository is None:
            return _items(self._db, "gsi1", keys.RELEASES, span, newest_first=newest_first, where=where)
        return _items(self._db, "gsi2", keys.releases_of(repository), span, newest_first=newest_first, where=where)

    def _list_releases(self, query: ReleaseQuery, before: str | None) -> Page[ReleaseView]:
        equal: dict[str, Any] = {}
        if query.state is not None:
            equal["state"] = query.state
        if query.prerelease is not None:
            equal["prerelease"] = query.prerelease
        where = _Filter(
            equal,
            at_least=None if query.since is None else {"sort_at": query.since},
            below=None if query.until is None else {"sort_at": query.until},
        )
        span = _Range(before=before, at_least=query.since)
        size = page_size(query.limit)
        found = itertools.islice(self._releases(query.repository, span, newest_first=True, where=where), size + 1)
        views = []
        for attrs in found:  # a page carries no history (as every backend's): `get_release` has it
            stored = stored_release(attrs, with_history=False)
            record = replace(stored.record, history=())
            views.append(ReleaseView(record, stored.first_seen_at, stored.updated_at, stored.sources))
        return page_of(views, size, lambda v: encode_cursor([sort_at(v.record.content), v.record.release_id]))

    def _repositories(self, text: str, limit: int) -> list[str]:
        condition, bound = "pk = :pk", {":pk": keys.REPOSITORIES}
        if text:
            condition, bound[":text"] = condition + " AND begins_with(sk, :text)", text
        response = self._db.clients.dynamodb.query(
            TableName=self._db.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(bound),
            Limit=limit,
        )
        return [str(from_item(item)["sk"]) for item in response.get("Items", [])]

    def _newest(self, repository: str | None) -> str | None:
        newest = next(self._releases(repository, _Range(), newest_first=True), None)
        return None if newest is None else (str(newest.get("sort_at") or "") or None)

    def _by_day(self, since: str, repository: str | None) -> dict[str, int]:
        days: dict[str, int] = {}
        where = _Filter({}, at_least={"sort_at": since})
        for attrs in self._releases(repository, _Range(at_least=since), newest_first=False, where=where):
            day = str(attrs["sort_at"])[:10]
            days[day] = days.get(day, 0) + 1
        return days

    def _to_reprocess(self, selection: ReprocessSelection, last: int | None, size: int) -> Page[StoredDelivery]:
        if selection.delivery_id is not None:
            return self._one_to_reprocess(selection, selection.delivery_id, last)
        equal = {"status": DeliveryStatus.FAILED.value} if selection.failed_only else {}
        where = _Filter(equal, at_least=None if selection.since is None else {"received_at": selection.since})
        span = _Range(after=None if last is None else keys.n20(last))
        streams = [
            _items(self._db, "gsi1", keys.deliveries_shard(n), span, newest_first=False, where=where)
            for n in range(keys.SHARDS)
        ]
        merged = heapq.merge(*streams, key=lambda attrs: int(attrs["seq"]))
        found = list(itertools.islice(merged, size + 1))
        bodies = self._bodies([str(a["delivery_id"]) for a in found])
        items = [stored_delivery(a, bodies.get(str(a["delivery_id"]), b"")) for a in found]
        return page_of(items, size, lambda d: encode_cursor([d.seq]))

    def _bodies(self, delivery_ids: Sequence[str]) -> dict[str, bytes]:
        """The bodies of deliveries (their body items, batched; a missing one is left out: it reads as empty)."""
        found = batch_get(self._db, [keys.body(i) for i in delivery_ids])
        return {str(a["delivery_id"]): body_of(self._db, a) for a in found}

    def _one_to_reprocess(
        self, selection: ReprocessSelection, delivery_id: str, last: int | None
    ) -> Page[StoredDelivery]:
        a = get(self._db, keys.delivery(delivery_id))
        if (
            a is None
            or (last is not None and int(a["seq"]) <= last)
            or (selection.since is not None and float(a["received_at"]) < selection.since)
            or (selection.failed_only and a["status"] != DeliveryStatus.FAILED.value)
        ):
            return Page(items=[], next_cursor=None)
        return Page(
            items=[stored_delivery(a, body_of(self._db, get(self._db, keys.body(delivery_id))))], next_cursor=None
        )

    def _ping(self) -> None:
        self._db.clients.dynamodb.get_item(TableName=self._db.table, Key=key(keys.META))
