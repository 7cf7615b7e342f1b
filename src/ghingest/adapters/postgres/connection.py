"""The connections behind every PostgreSQL port: one `AsyncConnectionPool`, one LISTEN connection, the wake-ups.

- Every port borrows a pooled connection (autocommit; a transaction where it needs one) and gives it back at once.
  A connection failure, a pool timeout (every connection busy, or the server unreachable), a server shutdown or a
  closed pool raise `StoreUnavailable` (the receiver answers 503, the worker backs off): the error's class, never
  its text (which can quote the connection string or a statement's values). A connection that failed is dropped
  by the pool, and the pool's idle connections are checked at once, so that one failure, not one per pooled
  connection, tells the application that the server went away; the pool reconnects by itself.
- One connection LISTENs on the channels the ports NOTIFY in their transactions (`WORK`, `CHANGES`,
  `FORWARDS`), so that a commit in any process wakes the waiters of this one; commits in this process also wake
  them directly. While that connection is down (it reconnects with backoff), waiters poll: they wake every
  `poll_interval` seconds and look again.
- Time never comes from the server: every timestamp is the injected clock's, passed as a parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import RowMaker
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from ghingest.adapters.memory.signal import Signal, wait
from ghingest.adapters.sql import migrate
from ghingest.core.errors import StoreUnavailable
from ghingest.ports.clock import SYSTEM_CLOCK, Clock

WORK = "ghingest_work"  # deliveries appended, requeued, or due again
CHANGES = "ghingest_changes"  # outcomes recorded (the change feed moved)
FORWARDS = "ghingest_forwards"  # forward jobs created or due again
CHANNELS = (WORK, CHANGES, FORWARDS)

_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed, TooManyRequests)
_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


def conninfo_of(url: str) -> str:
    """A libpq connection URI from a `postgresql://` or `postgres://` database URL (libpq reads both)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError("a PostgreSQL database URL starts with 'postgresql://' or 'postgres://'")
    return url


def pyformat(sql: str) -> str:
    """A statement written with `?` placeholders (the shared SQL of `ghingest.adapters.sql`) in psycopg's `%s`
    style. The shared statements hold no `?` or `%` of their own (no literal, no operator)."""
    return sql.replace("%", "%%").replace("?", "%s")


def clean(value: Any) -> Any:
    """A parameter PostgreSQL can take: text cannot hold NUL, so a NUL in text (a payload's field, a filter from
    a query string) becomes U+FFFD (which matches no stored NUL, as none can be stored). Bytes stay as they are."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, tuple | list):
        return [clean(v) for v in value] if isinstance(value, list) else tuple(clean(v) for v in value)
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


class MappedRow(tuple[Any, ...]):
    """A row as a tuple that also maps column names to values (`row._mapping`, as SQLAlchemy rows do), so that
    the shared row mappings of `ghingest.adapters.sql.queries` read it."""

    _mapping: dict[str, Any]

    def __new__(cls, values: Sequence[Any], names: Sequence[str]) -> MappedRow:
        row = super().__new__(cls, values)
        row._mapping = dict(zip(names, values, strict=True))
        return row


def mapped_rows(cursor: Any) -> RowMaker[MappedRow]:
    names = [column.name for column in cursor.description or ()]
    return lambda values: MappedRow(values, names)


def compiled(statement: sa.ClauseElement) -> tuple[str, dict[str, Any]]:
    """A SQLAlchemy Core statement (`ghingest.adapters.sql.queries`) as psycopg SQL and its parameters."""
    result = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(result), clean(dict(result.params))


class PostgresResources:
    """The pool, the listener and the wake-ups every port of one backend shares (`Resources`)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        clock: Clock = SYSTEM_CLOCK,
        pool_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.url = url
        self.clock = clock
        self.poll_interval = poll_interval
        self._conninfo = conninfo_of(url)
        self._pool_size = pool_size
        self._pool_timeout = pool_timeout
        self._connect_kwargs: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        self._pool: AsyncConnectionPool | None = None
        self._closed = False
        self._listener: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self.listening = False  # the LISTEN connection is up: waiters need not poll
        self.signals = {channel: Signal() for channel in CHANNELS}

    # --- Resources ----------------------------------------------------------------------------------------------

    def upgrade(self) -> None:
        migrate.upgrade(self.url)

    async def start(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._pool is not None:
            return
        self._pool = AsyncConnectionPool(
            self._conninfo,
            min_size=min(2, self._pool_size),
            max_size=self._pool_size,
            open=False,
            timeout=self._pool_timeout,
            kwargs={"autocommit": True, "application_name": "ghingest", **self._connect_kwargs},
            name="ghingest",
        )
        await self._pool.open(wait=False)
        self._listener = asyncio.create_task(self._listen(), name="ghingest-postgres-listen")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._listener, self._checking):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._pool is not None:
            await self._pool.close()
        for signal in self.signals.values():
            signal.notify()  # waiters wake and find the store closed

    # --- connections --------------------------------------------------------------------------------------------

    def _open_pool(self) -> AsyncConnectionPool:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._pool is None:
            raise StoreUnavailable("the store is not started")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection in autocommit mode; connection failures raise `StoreUnavailable`."""
        pool = self._open_pool()
        try:
            async with pool.connection() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            self._connection_failed()
            raise StoreUnavailable(f"the store is unavailable: {exc.__class__.__name__}") from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[MappedRow]:
        async with self.connection() as conn:
            cursor = await conn.cursor(row_factory=mapped_rows).execute(sql, clean(params))
            return await cursor.fetchall()

    async def fetch_statement(self, statement: sa.ClauseElement) -> list[MappedRow]:
        return await self.fetch(*compiled(statement))

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetch(sql, params)
        return rows[0][0] if rows else None

    def _connection_failed(self) -> None:
        """Check the pool's idle connections now (one task at a time): a server that restarted or killed them
        leaves every one broken, and each would otherwise fail one request of its own."""
        if self._pool is None or self._closed or (self._checking is not None and not self._checking.done()):
            return
        with contextlib.suppress(RuntimeError):  # no running loop
            self._checking = asyncio.get_running_loop().create_task(self._check_pool(self._pool))

    @staticmethod
    async def _check_pool(pool: AsyncConnectionPool) -> None:
        with contextlib.suppress(Exception):
            await pool.check()

    # --- wake-ups -----------------------------------------------------------------------------------------------

    def notify_local(self, *channels: str) -> None:
        for channel in channels:
            self.signals[channel].notify()

    async def wait(self, channel: str, timeout: float, ready: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Until a NOTIFY on `channel` (from any process), `ready()` holds, or `timeout` seconds have passed.
        While the LISTEN connection (or the server) is down, `poll_interval` seconds at the most. Raises
        `StoreUnavailable` once the resources are closed."""
        self._open_pool()
        event = self.signals[channel].register()
        polling = not self.listening
        if ready is not None:
            try:
                if await ready():
                    return
            except StoreUnavailable:  # the server is away: wait a poll interval, then let the caller try again
                polling = True
        if polling:
            timeout = min(timeout, self.poll_interval)
        await wait(event, timeout)
        self._open_pool()

    async def _listen(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="ghingest-listen", **self._connect_kwargs
                )
            except psycopg.Error:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                async with conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    # Waiters that began while nobody listened poll (see `wait`): none needs waking now.
                    self.listening, backoff = True, 0.1
                    async for notify in conn.notifies():
                        signal = self.signals.get(notify.channel)
                        if signal is not None:
                            signal.notify()
            except psycopg.Error:
                pass
            finally:
                self.listening = False
                self._wake_all()  # waiters that expected a NOTIFY look again, and wait polling
            await asyncio.sleep(backoff)

    def _wake_all(self) -> None:
        for signal in self.signals.values():
            signal.notify()
