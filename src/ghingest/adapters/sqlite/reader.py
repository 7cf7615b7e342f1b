"""Read access to the SQLite file through SQLAlchemy Core, off the event loop, on query-only connections."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Row

from ghingest.core.errors import StoreUnavailable

T = TypeVar("T")


class SqliteReader:
    def __init__(self, path: Path) -> None:
        self.engine = sa.create_engine(
            f"sqlite:///{path}",
            connect_args={"check_same_thread": False, "timeout": 10.0},
            pool_size=8,
            max_overflow=8,
        )

        self._closed = False

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.execute("PRAGMA busy_timeout=10000")
            dbapi_connection.execute("PRAGMA query_only=1")

    def run_sync(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a read connection. The file cannot be read (locked past the busy timeout, not migrated, an
        I/O error): `StoreUnavailable`, with the error's class only (the API answers 503, as PostgreSQL's does)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            with self.engine.connect() as conn:
                return work(conn)
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            raise StoreUnavailable(f"the store cannot be read: {exc.__class__.__name__}") from None

    async def run(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self.run_sync, work)

    async def fetch_all(self, statement: sa.Executable) -> Sequence[Row[Any]]:
        return await self.run(lambda conn: conn.execute(statement).fetchall())

    async def scalar_int(self, sql: str, **params: Any) -> int:
        value = await self.run(lambda conn: conn.execute(sa.text(sql), params).scalar())
        return int(value or 0)

    def close(self) -> None:
        self._closed = True
        self.engine.dispose()
