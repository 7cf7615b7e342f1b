"""The SQL of `AuditLog`, shared by the SQLite and PostgreSQL adapters: the insert as a `?` statement (SQLite runs
it as it is, PostgreSQL through `pyformat`), reads as SQLAlchemy Core, and the rows' mapping to entries.

A list walks `ix_audit_log_actor_sort` (with an actor), `ix_audit_log_action_sort` (with an action) or
`ix_audit_log_sort` newest first, from its cursor's key on; the other filters are conditions on what it reads.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from ghingest.adapters.sql.queries import MappingRow
from ghingest.adapters.sql.schema import audit_log
from ghingest.ports.audit import AuditEntry, AuditQuery

COLUMNS = tuple(c.name for c in audit_log.c)
INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608


def params(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        entry.id, entry.at, entry.actor, entry.client, entry.action, orjson.dumps(dict(entry.selection)).decode(),
        orjson.dumps(dict(entry.result)).decode(), entry.ok,
    )  # fmt: skip


def entry_of(row: MappingRow) -> AuditEntry:
    m = row._mapping
    return AuditEntry(
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        client=m["client"],
        action=m["action"],
        selection=orjson.loads(m["selection"]),
        result=orjson.loads(m["result"]),
        ok=bool(m["ok"]),
    )


def select_entry(entry_id: str) -> sa.Select[Any]:
    return sa.select(audit_log).where(audit_log.c.id == entry_id)


def select_entries(query: AuditQuery, *, after: tuple[float, str] | None, limit: int) -> sa.Select[Any]:
    """`limit` entries matching `query`, newest first (then by id, descending), after the keyset `after`."""
    key = (audit_log.c.at, audit_log.c.id)
    statement = sa.select(audit_log)
    if query.action is not None:
        statement = statement.where(audit_log.c.action == query.action)
    if query.actor is not None:
        statement = statement.where(audit_log.c.actor == query.actor)
    if query.since is not None:
        statement = statement.where(audit_log.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(audit_log.c.at < query.until)
    if query.ok is not None:
        statement = statement.where(audit_log.c.ok == query.ok)
    if after is not None:
        statement = statement.where(sa.tuple_(*key) < after)
    return statement.order_by(*(column.desc() for column in key)).limit(limit)
