"""What ghingest keeps of its conversations with GitHub's API, on DynamoDB (docs/aws/dynamodb.md, patterns 17 to 21).

- A gap is the item `GAP#<hook>` / `<delivery id>`: `gaps_for` batch-reads a page of them by key. It is in every
  index: gsi1 `GAPS` (all gaps, by `<t delivered_at>#<hook>#<delivery id>`), gsi2 `GAPS#<hook>` (one hook's, by
  `<t>#<delivery id>`), gsi3 `GAPSTATE#<state>` (by state, the same key as gsi1). A list reads the partition that
  narrows it most, newest first, from its cursor's key on; a hook's open gaps merge its two open states' gsi3
  partitions, oldest first; the counts per state are `Select=COUNT` queries of gsi3. Gaps are few (each a
  delivery that went missing, and closed ones are purged after a while), so one partition holds them all.
  `purge_gaps` walks each closed state's gsi3 partition oldest first up to `before` and deletes what it finds, each
  gap on the condition that it is still in that state and older than `before` (the index may lag behind a write),
  `PURGE_LIMIT` at most: one `DeleteItem` a gap.
- A hook's last run is `SCANS` / `<hook>`, a tracked repository `TRACKED` / `<key>`: one partition each, read in
  key order (a handful of items).
- A lease is `LEASES` / `<name>` (`holder`, `until`): taken or renewed by one conditional `PutItem`
  (`attribute_not_exists(pk) OR holder = :holder OR until <= :now`, `now` from the injected clock; DynamoDB
  applies conditional writes to one item one at a time, so at most one holder wins), given up by a `DeleteItem`
  on `holder = :holder`.

The index reads are eventually consistent, as DynamoDB's indexes are; a gap read by key is strongly consistent.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.clients import is_error
from ghingest.adapters.aws.table import (
    TableContext,
    batch_get,
    float_or_none,
    get,
    int_or_none,
    key,
    query,
    to_item,
)
from ghingest.adapters.sql.github_sync import unique_gaps
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.reconcile import OPEN_STATES, Gap, GapKind, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.github_sync import PURGE_LIMIT, gap_after, gap_cursor

_TRANSACTION = 100  # items per TransactWriteItems
_QUERY_PAGE = 100


class AwsGitHubSyncState:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    # --- reconciliation -------------------------------------------------------------------------------------------

    async def gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> Mapping[str, Gap]:
        return await self._db.run("github.gaps_for", self._gaps_for, hook, delivery_ids)

    async def save_gaps(self, gaps: Sequence[Gap]) -> None:
        if gaps:
            await self._db.run("github.save_gaps", self._save_gaps, unique_gaps(gaps))

    async def open_gaps(self, hook: str) -> Sequence[Gap]:
        return await self._db.run("github.open_gaps", self._open_gaps, hook)

    async def list_gaps(
        self,
        *,
        states: frozenset[GapState] | None = None,
        hook: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Gap]:
        after = gap_after(cursor) if cursor else None
        return await self._db.run("github.list_gaps", self._list_gaps, states, hook, after, page_size(limit))

    async def gap_counts(self) -> Mapping[GapState, int]:
        return await self._db.run("github.gap_counts", self._gap_counts)

    async def purge_gaps(self, *, before: float) -> int:
        return await self._db.run("github.purge_gaps", self._purge_gaps, before)

    async def save_scan(self, scan: HookScan) -> None:
        await self._db.run("github.save_scan", self._put, _scan_item(scan))

    async def get_scan(self, hook: str) -> HookScan | None:
        found = await self._db.run("github.get_scan", get, self._db, keys.scan(hook))
        return None if found is None else _scan(found)

    async def list_scans(self) -> Sequence[HookScan]:
        return [_scan(a) for a in await self._db.run("github.list_scans", self._partition, keys.SCANS)]

    # --- release tracking -------------------------------------------------------------------------------------------

    async def save_tracked(self, repository: TrackedRepository) -> None:
        await self._db.run("github.save_tracked", self._put, _tracked_item(repository))

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        return await self._db.run("github.add_tracked", self._put_new, _tracked_item(repository))

    async def get_tracked(self, key: str) -> TrackedRepository | None:
        found = await self._db.run("github.get_tracked", get, self._db, keys.tracked(key))
        return None if found is None else _tracked(found)

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        return [_tracked(a) for a in await self._db.run("github.list_tracked", self._partition, keys.TRACKED)]

    async def remove_tracked(self, key: str) -> bool:
        return await self._db.run("github.remove_tracked", self._delete, keys.tracked(key))

    # --- leases -----------------------------------------------------------------------------------------------------

    async def hold_lease(self, name: str, holder: str, *, until: float) -> bool:
        return await self._db.run("github.hold_lease", self._hold_lease, name, holder, until)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._db.run("github.release_lease", self._release_lease, name, holder)

    # --- blocking parts (on a thread) -----------------------------------------------------------------------------

    def _gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> dict[str, Gap]:
        found = batch_get(self._db, [keys.gap(hook, delivery_id) for delivery_id in delivery_ids])
        return {gap.delivery_id: gap for gap in map(_gap, found)}

    def _save_gaps(self, gaps: Sequence[Gap]) -> None:
        for start in range(0, len(gaps), _TRANSACTION):
            chunk = gaps[start : start + _TRANSACTION]
            puts = [{"Put": {"TableName": self._db.table, "Item": to_item(_gap_item(g))}} for g in chunk]
            self._db.clients.dynamodb.transact_write_items(TransactItems=puts)

    def _open_gaps(self, hook: str) -> list[Gap]:
        streams = [
            self._index("gsi3", keys.gaps_in(state.value), newest_first=False, hook=hook)
            for state in sorted(OPEN_STATES)
        ]
        return [_gap(a) for a in heapq.merge(*streams, key=lambda a: str(a["gsi3sk"]))]

    def _list_gaps(
        self, states: frozenset[GapState] | None, hook: str | None, after: tuple[float, str, str] | None, size: int
    ) -> Page[Gap]:
        if states is not None and not states:
            return Page(items=[], next_cursor=None)
        if hook is not None:  # one hook's partition, the states as a filter
            before = None if after is None else _before_in_hook(hook, after)
            wanted = None if states is None else sorted(s.value for s in states)
            found = self._index("gsi2", keys.gaps_of(hook), newest_first=True, before=before, states=wanted)
        elif states is not None:  # one partition per state, merged
            before = None if after is None else keys.gap_sort(*after)
            streams = [
                self._index("gsi3", keys.gaps_in(s.value), newest_first=True, before=before) for s in sorted(states)
            ]
            found = heapq.merge(*streams, key=lambda a: str(a["gsi3sk"]), reverse=True)
        else:
            before = None if after is None else keys.gap_sort(*after)
            found = self._index("gsi1", keys.GAPS, newest_first=True, before=before)
        return page_of([_gap(a) for a in itertools.islice(found, size + 1)], size, gap_cursor)

    def _gap_counts(self) -> dict[GapState, int]:
        counts = dict.fromkeys(GapState, 0)
        for state in GapState:
            arguments: dict[str, Any] = {
                "TableName": self._db.table,
                "IndexName": "gsi3",
                "KeyConditionExpression": "gsi3pk = :pk",
                "ExpressionAttributeValues": to_item({":pk": keys.gaps_in(state.value)}),
                "Select": "COUNT",
            }
            while True:
                response = self._db.clients.dynamodb.query(**arguments)
                counts[state] += int(response.get("Count", 0))
                if "LastEvaluatedKey" not in response:
                    break
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return counts

    def _purge_gaps(self, before: float) -> int:
        deleted = 0
        for state in sorted(set(GapState) - OPEN_STATES):
            old = self._index("gsi3", keys.gaps_in(state.value), newest_first=False, before=keys.t(before))
            for found in old:
                if deleted >= PURGE_LIMIT:
                    return deleted
                deleted += self._delete_if(
                    {"pk": found["pk"], "sk": found["sk"]},
                    "#state = :state AND delivered_at < :before",
                    {"#state": "state"},
                    {":state": state.value, ":before": before},
                )
        return deleted

    def _hold_lease(self, name: str, holder: str, until: float) -> bool:
        try:
            self._db.clients.dynamodb.put_item(
                TableName=self._db.table,
                Item=to_item({**keys.lease(name), "holder": holder, "until": until}),
                ConditionExpression="attribute_not_exists(pk) OR #holder = :holder OR #until <= :now",
                ExpressionAttributeNames={"#holder": "holder", "#until": "until"},
                ExpressionAttributeValues=to_item({":holder": holder, ":now": self._db.clock.now()}),
            )
        except Exception as exc:
            if is_error(exc, "ConditionalCheckFailedException"):
                return False
            raise
        return True

    def _release_lease(self, name: str, holder: str) -> None:
        self._delete_if(keys.lease(name), "#holder = :holder", {"#holder": "holder"}, {":holder": holder})

    def _delete_if(
        self, item_key: Mapping[str, str], condition: str, names: Mapping[str, str], bound: Mapping[str, Any]
    ) -> bool:
        """Delete the item if `condition` holds; whether it did."""
        try:
            self._db.clients.dynamodb.delete_item(
                TableName=self._db.table,
                Key=key(item_key),
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues=to_item(bound),
            )
        except Exception as exc:
            if is_error(exc, "ConditionalCheckFailedException"):
                return False
            raise
        return True

    def _index(
        self,
        index: str,
        partition: str,
        *,
        newest_first: bool,
        before: str | None = None,
        hook: str | None = None,
        states: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """One index partition in sort-key order, below `before`, with the gap's hook or state as a filter."""
        condition = f"{index}pk = :pk" + ("" if before is None else f" AND {index}sk < :before")
        bound: dict[str, Any] = {":pk": partition, ":before": before}
        filters, names = [], {}
        if hook is not None:
            filters.append("#hook = :hook")
            names["#hook"], bound[":hook"] = "hook", hook
        if states:
            wanted = [f":s{n}" for n in range(len(states))]
            filters.append(f"#state IN ({', '.join(wanted)})")
            names["#state"] = "state"
            bound |= dict(zip(wanted, states, strict=True))
        arguments: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ScanIndexForward": not newest_first,
            "Limit": _QUERY_PAGE,
            "ExpressionAttributeValues": to_item(bound),
        }
        if filters:
            arguments["FilterExpression"] = " AND ".join(filters)
            arguments["ExpressionAttributeNames"] = names
        return query(self._db, **arguments)

    def _partition(self, pk: str) -> list[dict[str, Any]]:
        return list(
            query(
                self._db,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues=to_item({":pk": pk}),
                ConsistentRead=True,
            )
        )

    def _put(self, item: dict[str, Any]) -> None:
        self._db.clients.dynamodb.put_item(TableName=self._db.table, Item=to_item(item))

    def _put_new(self, item: dict[str, Any]) -> bool:
        try:
            self._db.clients.dynamodb.put_item(
                TableName=self._db.table, Item=to_item(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if is_error(exc, "ConditionalCheckFailedException"):
                return False
            raise
        return True

    def _delete(self, item_key: Mapping[str, str]) -> bool:
        response = self._db.clients.dynamodb.delete_item(
            TableName=self._db.table, Key=key(item_key), ReturnValues="ALL_OLD"
        )
        return bool(response.get("Attributes"))


def _before_in_hook(hook: str, after: tuple[float, str, str]) -> str:
    """A `list_gaps` cursor's key, (delivered_at, hook, delivery id), as a bound on one hook's gsi2 sort keys: what
    sorts below it there. A cursor of another hook's gap (no page of this list makes one) still bounds exactly."""
    delivered_at, cursor_hook, delivery_id = after
    if cursor_hook == hook:
        return keys.hook_gap_sort(delivered_at, delivery_id)
    # every gap of this hook at that time sorts below the cursor (this hook sorts first), or none does
    return keys.t(delivered_at) + ("$" if hook < cursor_hook else "")  # "$" sorts just above the "#" separator


# --- items ------------------------------------------------------------------------------------------------------


def _gap_item(g: Gap) -> dict[str, Any]:
    order = keys.gap_sort(g.delivered_at, g.hook, g.delivery_id)
    return {
        **keys.gap(g.hook, g.delivery_id),
        "gsi1pk": keys.GAPS,
        "gsi1sk": order,
        "gsi2pk": keys.gaps_of(g.hook),
        "gsi2sk": keys.hook_gap_sort(g.delivered_at, g.delivery_id),
        "gsi3pk": keys.gaps_in(g.state.value),
        "gsi3sk": order,
        "hook": g.hook,
        "delivery_id": g.delivery_id,
        "github_id": g.github_id,
        "event": g.event,
        "action": g.action,
        "delivered_at": g.delivered_at,
        "status_code": g.status_code,
        "github_status": g.github_status,
        "kind": g.kind.value,
        "state": g.state.value,
        "found_at": g.found_at,
        "updated_at": g.updated_at,
        "requests": g.requests,
        "last_requested_at": g.last_requested_at,
        "arrived_at": g.arrived_at,
        "error": g.error,
    }


def _gap(a: Mapping[str, Any]) -> Gap:
    return Gap(
        hook=str(a["hook"]),
        delivery_id=str(a["delivery_id"]),
        github_id=int(a["github_id"]),
        event=str(a["event"]),
        action=a.get("action"),
        delivered_at=float(a["delivered_at"]),
        status_code=int(a["status_code"]),
        github_status=str(a["github_status"]),
        kind=GapKind(a["kind"]),
        state=GapState(a["state"]),
        found_at=float(a["found_at"]),
        updated_at=float(a["updated_at"]),
        requests=int(a["requests"]),
        last_requested_at=float_or_none(a.get("last_requested_at")),
        arrived_at=float_or_none(a.get("arrived_at")),
        error=a.get("error"),
    )


def _scan_item(s: HookScan) -> dict[str, Any]:
    return {
        **keys.scan(s.hook),
        "hook": s.hook,
        "last_run_at": s.last_run_at,
        "last_ok_at": s.last_ok_at,
        "error": s.error,
        "newest_seen_at": s.newest_seen_at,
        "deliveries_seen": s.deliveries_seen,
        "requests_made": s.requests_made,
    }


def _scan(a: Mapping[str, Any]) -> HookScan:
    return HookScan(
        hook=str(a["hook"]),
        last_run_at=float(a["last_run_at"]),
        last_ok_at=float_or_none(a.get("last_ok_at")),
        error=a.get("error"),
        newest_seen_at=float_or_none(a.get("newest_seen_at")),
        deliveries_seen=int(a["deliveries_seen"]),
        requests_made=int(a["requests_made"]),
    )


def _tracked_item(r: TrackedRepository) -> dict[str, Any]:
    return {
        **keys.tracked(r.key),
        "key": r.key,
        "full_name": r.full_name,
        "added_at": r.added_at,
        "added_by": r.added_by,
        "repository_id": r.repository_id,
        "etag": r.etag,
        "known": {str(release_id): digest for release_id, digest in r.known.items()},  # a map: its keys are text
        "last_polled_at": r.last_polled_at,
        "last_status": r.last_status,
        "last_changed_at": r.last_changed_at,
        "last_error": r.last_error,
        "next_poll_at": r.next_poll_at,
        "polls": r.polls,
        "not_modified": r.not_modified,
    }


def _tracked(a: Mapping[str, Any]) -> TrackedRepository:
    return TrackedRepository(
        key=str(a["key"]),
        full_name=str(a["full_name"]),
        added_at=float(a["added_at"]),
        added_by=str(a["added_by"]),
        repository_id=int_or_none(a.get("repository_id")),
        etag=a.get("etag"),
        known={int(release_id): str(digest) for release_id, digest in a.get("known", {}).items()},
        last_polled_at=float_or_none(a.get("last_polled_at")),
        last_status=int_or_none(a.get("last_status")),
        last_changed_at=float_or_none(a.get("last_changed_at")),
        last_error=a.get("last_error"),
        next_poll_at=float(a["next_poll_at"]),
        polls=int(a["polls"]),
        not_modified=int(a["not_modified"]),
    )
