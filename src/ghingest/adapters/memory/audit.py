"""The audit log in memory: entries by id, filtered and sorted per call (the SQL backends walk an index in the
same order). Nothing persists."""

from __future__ import annotations

from ghingest.adapters.memory.tables import MemoryDatabase
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.ports.audit import AuditEntry, AuditQuery, audit_after, audit_cursor, audit_order, matches


class MemoryAuditLog:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def append(self, entry: AuditEntry) -> None:
        with self._db.transaction() as db:
            db.audit[entry.id] = entry

    async def get(self, entry_id: str) -> AuditEntry | None:
        with self._db.transaction() as db:
            return db.audit.get(entry_id)

    async def list(self, query: AuditQuery) -> Page[AuditEntry]:
        after = audit_after(query.cursor) if query.cursor else None
        size = page_size(query.limit)
        with self._db.transaction() as db:
            found = [
                entry
                for entry in db.audit.values()
                if matches(entry, query) and (after is None or audit_order(entry) < after)
            ]
        found.sort(key=audit_order, reverse=True)
        return page_of(found[: size + 1], size, audit_cursor)
