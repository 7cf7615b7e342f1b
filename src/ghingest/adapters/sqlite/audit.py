"""The audit log in SQLite: appended by the writer (group commit), read on the read pool. The statements are the
shared ones (`ghingest.adapters.sql.audit`)."""

from __future__ import annotations

from ghingest.adapters.sql import audit as sql
from ghingest.adapters.sqlite.reader import SqliteReader
from ghingest.adapters.sqlite.writer import SqliteWriter
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.ports.audit import AuditEntry, AuditQuery, audit_after, audit_cursor


class SqliteAuditLog:
    def __init__(self, writer: SqliteWriter, reader: SqliteReader) -> None:
        self._writer = writer
        self._reader = reader

    async def append(self, entry: AuditEntry) -> None:
        params = sql.params(entry)
        await self._writer.run(lambda conn: conn.execute(sql.INSERT, params))

    async def get(self, entry_id: str) -> AuditEntry | None:
        rows = await self._reader.fetch_all(sql.select_entry(entry_id))
        return sql.entry_of(rows[0]) if rows else None

    async def list(self, query: AuditQuery) -> Page[AuditEntry]:
        after = audit_after(query.cursor) if query.cursor else None
        size = page_size(query.limit)
        rows = await self._reader.fetch_all(sql.select_entries(query, after=after, limit=size + 1))
        return page_of([sql.entry_of(row) for row in rows], size, audit_cursor)
