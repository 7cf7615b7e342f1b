"""The audit log in PostgreSQL: shared by every process on the database. The statements are the shared ones
(`ghingest.adapters.sql.audit`)."""

from __future__ import annotations

from ghingest.adapters.postgres.connection import PostgresResources, clean, pyformat
from ghingest.adapters.sql import audit as sql
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.ports.audit import AuditEntry, AuditQuery, audit_after, audit_cursor

_INSERT = pyformat(sql.INSERT)


class PostgresAuditLog:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def append(self, entry: AuditEntry) -> None:
        async with self._db.connection() as conn:  # autocommit: durable when it returns
            await conn.execute(_INSERT, clean(sql.params(entry)))

    async def get(self, entry_id: str) -> AuditEntry | None:
        rows = await self._db.fetch_statement(sql.select_entry(entry_id))
        return sql.entry_of(rows[0]) if rows else None

    async def list(self, query: AuditQuery) -> Page[AuditEntry]:
        after = audit_after(query.cursor) if query.cursor else None
        size = page_size(query.limit)
        rows = await self._db.fetch_statement(sql.select_entries(query, after=after, limit=size + 1))
        return page_of([sql.entry_of(row) for row in rows], size, audit_cursor)
