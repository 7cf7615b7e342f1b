"""The audit log on DynamoDB (docs/aws/dynamodb.md, pattern 22): an entry is the item `AUDIT#<id>` / `#`, read by
key (strongly consistent: the page after an action reads its entry at once), and in three index partitions by
`<t at>#<id>`: gsi1 `AUDIT` (every entry), gsi2 `AUDITACT#<action>`, gsi3 `AUDITBY#<actor>`.

A list reads the partition that narrows it most (the actor's, else the action's, else all), newest first, below
its cursor's key (or `until`), and stops at the first entry older than `since`; the other filters are checked on
what it reads. Operator actions are few, so one partition holds every entry. The selection and the result are kept
as JSON text, as the SQL backends keep them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ghingest.adapters.aws import keys
from ghingest.adapters.aws.table import TableContext, get, query, to_item
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.ports.audit import AuditEntry, AuditQuery, audit_after, audit_cursor, matches

_QUERY_PAGE = 100


class AwsAuditLog:
    def __init__(self, db: TableContext) -> None:
        self._db = db

    async def append(self, entry: AuditEntry) -> None:
        await self._db.run("audit.append", self._append, entry)

    async def get(self, entry_id: str) -> AuditEntry | None:
        found = await self._db.run("audit.get", get, self._db, keys.audit(entry_id))
        return None if found is None else _entry(found)

    async def list(self, query: AuditQuery) -> Page[AuditEntry]:
        after = audit_after(query.cursor) if query.cursor else None
        return await self._db.run("audit.list", self._list, query, after, page_size(query.limit))

    # --- blocking parts (on a thread) -----------------------------------------------------------------------------

    def _append(self, entry: AuditEntry) -> None:
        self._db.clients.dynamodb.put_item(
            TableName=self._db.table, Item=to_item(_item(entry)), ConditionExpression="attribute_not_exists(pk)"
        )

    def _list(self, q: AuditQuery, after: tuple[float, str] | None, size: int) -> Page[AuditEntry]:
        if q.actor is not None:
            index, partition = "gsi3", keys.audit_of_actor(q.actor)
        elif q.action is not None:
            index, partition = "gsi2", keys.audit_of_action(q.action)
        else:
            index, partition = "gsi1", keys.AUDIT
        bounds = [keys.audit_sort(*after)] if after is not None else []
        if q.until is not None:
            bounds.append(keys.t(q.until))  # `<t at>#<id>` sorts below `<t until>` exactly when at < until
        found = self._newest_first(index, partition, min(bounds) if bounds else None)
        if q.since is not None:
            since = q.since
            found = itertools.takewhile(lambda entry: entry.at >= since, found)
        wanted = (entry for entry in found if matches(entry, q))
        return page_of(list(itertools.islice(wanted, size + 1)), size, audit_cursor)

    def _newest_first(self, index: str, partition: str, before: str | None) -> Iterator[AuditEntry]:
        condition = f"{index}pk = :pk" + ("" if before is None else f" AND {index}sk < :before")
        items = query(
            self._db,
            IndexName=index,
            KeyConditionExpression=condition,
            ScanIndexForward=False,
            Limit=_QUERY_PAGE,
            ExpressionAttributeValues=to_item({":pk": partition, ":before": before}),
        )
        return map(_entry, items)


def _item(e: AuditEntry) -> dict[str, Any]:
    order = keys.audit_sort(e.at, e.id)
    return {
        **keys.audit(e.id),
        "gsi1pk": keys.AUDIT,
        "gsi1sk": order,
        "gsi2pk": keys.audit_of_action(e.action),
        "gsi2sk": order,
        "gsi3pk": keys.audit_of_actor(e.actor),
        "gsi3sk": order,
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "client": e.client,
        "action": e.action,
        "selection": orjson.dumps(dict(e.selection)).decode(),
        "result": orjson.dumps(dict(e.result)).decode(),
        "ok": e.ok,
    }


def _entry(a: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=str(a["id"]),
        at=float(a["at"]),
        actor=str(a["actor"]),
        client=a.get("client"),
        action=str(a["action"]),
        selection=orjson.loads(a["selection"]),
        result=orjson.loads(a["result"]),
        ok=bool(a["ok"]),
    )
