"""One NATS connection, kept up in the background, that never replays what it held when it was lost.

nats-py reconnects by itself and, while it does, buffers publishes (up to `pending_size`, 2 MiB by default) and
flushes them, and whatever was still unsent in its write buffer, once it is connected again: a publish whose
caller was told it failed (and answered GitHub 503) could then be stored minutes later. So the client's own
reconnection is off (`allow_reconnect=False`, which also makes a publish on a lost connection raise at once) and
this supervisor replaces a lost connection by a new one, forever, with a bounded backoff: a connection, once lost,
is closed for good, and nothing it held is ever sent. Callers wait for the current connection up to their own
deadline (`current`), so a failover to another node costs a request a few milliseconds, not a 503.

Logs name the server by host and port only (a URL may carry credentials) and errors by their class.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import nats
import structlog
from nats.aio.client import Client

from ghingest.core.errors import StoreUnavailable

log = structlog.get_logger("ghingest.nats")

OnConnect = Callable[[Client], Awaitable[None]]
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
PING_INTERVAL = 5  # seconds between client pings: a silent (not closed) connection is given up after ~3 of them
MAX_OUTSTANDING_PINGS = 3


def where(url: str) -> str:
    """`host:port` of a server URL, without any credentials it carries."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 4222}"


class Connection:
    def __init__(
        self,
        servers: Sequence[str],
        *,
        name: str,
        on_connect: OnConnect,
        connect_timeout: float = 2.0,
    ) -> None:
        if not servers:
            raise ValueError("no NATS servers")
        self._servers = list(servers)
        self._name = name
        self._on_connect = on_connect
        self._connect_timeout = connect_timeout
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def client(self) -> Client | None:
        """The live connection, or None while there is none."""
        client = self._client
        if client is None or not client.is_connected:
            return None
        return client

    @property
    def closed(self) -> bool:
        return self._closing

    async def start(self, *, wait: float) -> None:
        """Start keeping a connection; wait up to `wait` seconds for the first one (not an error if it does not
        come: the supervisor keeps trying, and callers get `StoreUnavailable` until it does)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._supervise(), name=f"nats-connection-{self._name}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._ready.wait()

    async def current(self, deadline: float) -> Client:
        """The live connection, waiting for one until `deadline` (loop time); `StoreUnavailable` after that."""
        loop = asyncio.get_running_loop()
        while True:
            if self._closing:
                raise StoreUnavailable("the NATS inbox is closed")
            client = self.client
            if client is not None:
                return client
            self._ready.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StoreUnavailable(f"no NATS server reachable ({self.last_error or 'connecting'})")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._ready.wait()

    async def close(self) -> None:
        self._closing = True
        self._ready.set()  # wake waiters: they see `_closing`
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):
                await client.close()

    async def _supervise(self) -> None:
        backoff = BACKOFF_MIN
        while not self._closing:
            lost = asyncio.Event()
            client = await self._connect(lost)
            if client is None:
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            try:
                await self._on_connect(client)
            except Exception as exc:
                self.last_error = f"setting up: {exc.__class__.__name__}: {str(exc)[:200]}"
                log.warning("nats.setup_failed", error=exc.__class__.__name__, detail=str(exc)[:200])
                with contextlib.suppress(Exception):
                    await client.close()
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                continue
            backoff = BACKOFF_MIN
            self._client = client
            self.last_error = None
            self._ready.set()
            server = where(str(client.connected_url.geturl())) if client.connected_url else "?"
            log.info("nats.connected", server=server)
            # Lost when the client says so (closed callback), or noticed by polling (a close that failed halfway).
            while not lost.is_set() and client.is_connected:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await lost.wait()
            self._client = None
            self._ready.clear()
            if not self._closing:
                log.warning("nats.disconnected", server=server)
            with contextlib.suppress(Exception):
                await client.close()

    async def _connect(self, lost: asyncio.Event) -> Client | None:
        async def closed() -> None:
            lost.set()

        async def error(exc: Exception) -> None:
            self.last_error = exc.__class__.__name__

        try:
            async with asyncio.timeout(self._connect_timeout * (len(self._servers) + 1)):
                client: Client = await nats.connect(
                    servers=self._servers,
                    name=self._name,
                    no_echo=True,
                    allow_reconnect=False,  # see the module's docstring: never a replayed buffer
                    max_reconnect_attempts=1,  # each server tried twice by one connect, then NoServersError
                    reconnect_time_wait=0.05,
                    connect_timeout=max(1, round(self._connect_timeout)),
                    ping_interval=PING_INTERVAL,
                    max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                    pending_size=0,  # with reconnection off this is moot; stated for the reader: no buffering
                    closed_cb=closed,
                    disconnected_cb=closed,
                    error_cb=error,
                )
        except Exception as exc:
            self.last_error = exc.__class__.__name__
            return None
        return client
