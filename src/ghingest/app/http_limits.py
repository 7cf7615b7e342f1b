"""Bounded resources at the root of every listener: a subclass of uvicorn's httptools protocol, and the one function
that builds a listener's uvicorn configuration (`serve`, `receiver`, `dashboard` and the tests' servers).

uvicorn bounds only idle keep-alive connections (`timeout_keep_alive`); llhttp bounds nothing. Per connection, the
protocol here adds (settings `GHINGEST_HTTP_*`, README "Limits", ADR 0008):

- a **header deadline**: the request line and headers must be in within `header_timeout` of the connection opening
  or of the first byte of the next request; a **body deadline**: the whole body within `body_timeout` of the end of
  the head. A deadline that falls while the server itself has stopped reading (uvicorn's flow control: the
  application has not taken what was read, or a pipelined request waits) is pushed back by a whole timeout. Past a
  deadline: 408 JSON if nothing of a response is under way on the connection, and the connection is closed.
- a **head cap** (`max_header_bytes`, counted on the bytes received while the head is incomplete, so a header line
  that never ends is cut too) and a **header count cap** (`max_headers`): 431 JSON, closed.
- a **connection cap** (`max_connections`): a request on a connection past it gets 503 JSON with `Retry-After`
  (instead of uvicorn's `limit_concurrency`, which answers plain text) and the connection is closed.

Cost on the hot path: no timer per connection or request. A deadline is a float stored when a phase begins; one
timer per listener sweeps the open connections every tenth of the shorter timeout (at most every second), so a
deadline is met within that. Per received chunk: two comparisons; per request: two `loop.time()` and a few
comparisons in callbacks uvicorn calls anyway (bench/protocol_overhead.py measures it).

This relies on uvicorn's protocol internals (its parser callbacks, `cycle`, `pipeline`, `connections`, `flow`);
tests/integration/test_http_limits.py drives it over real sockets, so an incompatible uvicorn fails there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ghingest.app.metrics import Metrics
from ghingest.app.receiver import RETRY_AFTER_SECONDS
from ghingest.app.settings import Settings

_BETWEEN, _HEAD, _BODY = 0, 1, 2  # where the parser is: between requests, in a head, in a body


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    max_header_bytes: int
    max_headers: int
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        return cls(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            keep_alive_timeout=settings.http_keep_alive_timeout,
            max_header_bytes=settings.http_max_header_bytes,
            max_headers=settings.http_max_headers,
            max_connections=settings.http_max_connections,
        )


@dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str  # the metric label
    status: int
    code: str
    detail: str

    def response(self, default_headers: list[tuple[bytes, bytes]]) -> bytes:
        body = orjson.dumps({"error": self.code, "detail": self.detail})
        parts = [STATUS_LINE[self.status]]
        for name, value in default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts.append(b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        parts.append(body)
        return b"".join(parts)


HEADER_TIMEOUT = _Refusal("header_timeout", 408, "request_timeout", "the request head was not received in time")
BODY_TIMEOUT = _Refusal("body_timeout", 408, "request_timeout", "the request body was not received in time")
HEADER_TOO_LARGE = _Refusal(
    "header_too_large", 431, "request_header_fields_too_large", "the request line and headers are too large"
)
TOO_MANY_HEADERS = _Refusal("too_many_headers", 431, "request_header_fields_too_large", "too many header fields")


class _Refused(Exception):
    """Raised in a parser callback to stop parsing; httptools re-raises it as the context of its callback error."""

    def __init__(self, refusal: _Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class _Sweeper:
    """One timer per listener that checks every connection's deadline, every `interval` seconds while there are
    connections. (A timer per connection costs ~5 µs in uvloop, to create and cancel: as much again as the rest of
    these limits together.) A deadline is therefore met within one interval: a tenth of the shorter timeout."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], interval: float) -> None:
        self.loop = loop
        self.connections = connections
        self.interval = interval
        self.armed = False

    def ensure(self) -> None:
        if not self.armed:
            self.armed = True
            self.loop.call_later(self.interval, self.sweep)

    def sweep(self) -> None:
        self.armed = False
        now = self.loop.time()
        for protocol in tuple(self.connections):
            phase_ends = isinstance(protocol, LimitedHttpToolsProtocol) and protocol._phase != _BETWEEN
            if phase_ends and now >= protocol._deadline:
                protocol._deadline_passed(now)
        if self.connections:
            self.ensure()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, head caps and a connection cap; see the module docstring.

    Configure it with `protocol_class`: the limits (and the metrics to count refusals in) are class attributes,
    because uvicorn instantiates the class itself, once per connection. The hot-path methods call uvicorn's by
    name rather than through `super()`, and read the limits from flat class attributes."""

    # Slots: uvicorn's protocol already sets ~28 attributes per instance, near CPython's key-sharing limit (30).
    # They are set in connection_made: nothing reads them before (the sweeper sees only connections made).
    __slots__ = ("_app", "_chunk", "_deadline", "_head_bytes", "_phase")
    _app: Any  # the application (self.app is it, or the 503 answer past the connection limit)
    _phase: int  # _BETWEEN, _HEAD or _BODY
    _deadline: float  # by when the current phase must end (loop time; checked unless _BETWEEN)
    _head_bytes: int
    _chunk: int

    limits: ClassVar[HttpLimits]
    metrics: ClassVar[Metrics | None] = None
    sweeper: ClassVar[_Sweeper | None] = None
    _header_timeout: ClassVar[float]
    _body_timeout: ClassVar[float]
    _max_header_bytes: ClassVar[int]
    _max_headers: ClassVar[int]
    _max_connections: ClassVar[int]

    # --- deadlines ------------------------------------------------------------------------------------------------

    def _deadline_passed(self, now: float) -> None:
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server stopped reading (the application is busy): not the client's doing
            self._deadline = now + (self._header_timeout if self._phase == _HEAD else self._body_timeout)
        else:
            self._refuse(HEADER_TIMEOUT if self._phase == _HEAD else BODY_TIMEOUT)

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer `refusal` if no response is under way on this connection, then close it."""
        if self.metrics is not None:
            self.metrics.http_refusals.labels(refusal.reason).inc()
        cycle = self.cycle
        if self._phase == _BODY:
            idle = not self.pipeline and (cycle is None or not cycle.response_started)  # the cycle is this request's
        else:
            idle = not self.pipeline and (cycle is None or cycle.response_complete)
        if idle:
            self.transport.write(refusal.response(self.server_state.default_headers))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # what connection_lost does, at once: the application's next send is dropped
            cycle.message_event.set()
        self._phase = _BETWEEN
        self.transport.close()

    # --- uvicorn's protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        HttpToolsProtocol.connection_made(self, transport)
        self.headers = []
        self._app = self.app
        self._phase = _HEAD
        self._head_bytes = 0  # bytes received while the current head is incomplete (an upper bound of its size)
        self._chunk = 0  # the size of the chunk being parsed
        self._deadline = self.loop.time() + self._header_timeout  # the first head: from the connection's opening
        sweeper = self.sweeper
        if sweeper is None or sweeper.loop is not self.loop:
            interval = min(1.0, max(0.01, min(self._header_timeout, self._body_timeout) / 10))
            sweeper = type(self).sweeper = _Sweeper(self.loop, self.connections, interval)
        sweeper.ensure()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = _BETWEEN
        HttpToolsProtocol.connection_lost(self, exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received (its own would turn a refusal raised in a callback into a 400), with the head's
        # deadline and size. A head that begins after a request ended inside the same chunk (pipelining) has its
        # deadline from the next chunk on, and that chunk's share of it is counted when the head is complete.
        self._unset_keepalive_if_required()
        if self._phase == _BETWEEN:
            self._phase = _HEAD
            self._deadline = self.loop.time() + self._header_timeout
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__.refusal)
            else:
                self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._phase == _HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > self._max_header_bytes:
                self._refuse(HEADER_TOO_LARGE)
            elif len(self.headers) > self._max_headers:
                self._refuse(TOO_MANY_HEADERS)

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def on_headers_complete(self) -> None:
        if len(self.headers) > self._max_headers:
            raise _Refused(TOO_MANY_HEADERS)
        if self._head_bytes + self._chunk > self._max_header_bytes and self._head_size() > self._max_header_bytes:
            raise _Refused(HEADER_TOO_LARGE)
        self._phase = _BODY
        self._deadline = self.loop.time() + self._body_timeout
        self.app = self._too_many_connections if len(self.connections) > self._max_connections else self._app
        HttpToolsProtocol.on_headers_complete(self)

    def _head_size(self) -> int:
        """The head's size as parsed: request line and header fields (the exact check when the bound is over)."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._phase = _BETWEEN
        self._head_bytes = 0
        HttpToolsProtocol.on_message_complete(self)

    async def _too_many_connections(self, scope: Any, receive: Any, send: Any) -> None:
        if self.metrics is not None:
            self.metrics.http_refusals.labels("too_many_connections").inc()
        body = orjson.dumps({"error": "service_unavailable", "detail": "too many connections; retry later"})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def protocol_class(limits: HttpLimits, metrics: Metrics | None = None) -> type[LimitedHttpToolsProtocol]:
    """A `LimitedHttpToolsProtocol` bound to `limits` (and `metrics`), to pass as uvicorn's `http`."""

    class Configured(LimitedHttpToolsProtocol):
        __slots__ = ()

    Configured.limits = limits
    Configured.metrics = metrics
    Configured._header_timeout = limits.header_timeout
    Configured._body_timeout = limits.body_timeout
    Configured._max_header_bytes = limits.max_header_bytes
    Configured._max_headers = limits.max_headers
    Configured._max_connections = limits.max_connections
    return Configured


def uvicorn_config(application: Any, settings: Settings, *, metrics: Metrics | None = None, **options: Any) -> Config:
    """The uvicorn configuration of every listener: the limits of `settings`, no access log (the worker writes one
    line per delivery), lifespan on (it starts and stops the runtime), no WebSocket upgrade (nothing here speaks it,
    and an upgraded connection would leave these limits behind). `options` add to or override these."""
    values: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_level": "warning",
        "lifespan": "on",
        "http": protocol_class(HttpLimits.of(settings), metrics),
        "ws": "none",
        "backlog": settings.http_backlog,
        "timeout_keep_alive": settings.http_keep_alive_timeout,  # typed int, used as a delay: a float is fine
        # Never trust X-Forwarded-For from loopback: the application applies it only from a configured proxy and
        # keeps the real peer for the SSO check (ghingest.app.proxies).
        "proxy_headers": False,
    }
    values.update(options)
    return uvicorn.Config(application, **values)
