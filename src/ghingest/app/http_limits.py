"""Bounded resources at the root of every listener: a subclass of uvicorn's httptools protocol, and the one function
that builds a listener's uvicorn configuration (`serve`, `receiver`, `dashboard` and the tests' servers).

uvicorn bounds only idle keep-alive connections (`timeout_keep_alive`); llhttp bounds nothing. Per connection, the
protocol here adds (settings `GHINGEST_HTTP_*`, README "Limits", ADR 0008):

- a **header deadline**: the request line and headers must be in within `header_timeout` of the connection opening
  or of the first byte of the next request; a **body deadline**: the whole body within `body_timeout` of the end of
  the head (not counted while the server itself stopped reading because the application is not consuming). Past a
  deadline: 408 JSON if nothing of a response is under way, and the connection is closed either way.
- a **head cap** (`max_header_bytes`, counted on the bytes received while the head is incomplete, so a header line
  that never ends is cut too) and a **header count cap** (`max_headers`): 431 JSON, closed.
- a **connection cap** (`max_connections`): a request on a connection past it gets 503 JSON with `Retry-After`
  (instead of uvicorn's `limit_concurrency`, which answers plain text) and the connection is closed.

Cost on the hot path: no timer per request on a keep-alive connection. One timer per connection is armed when it
opens; a deadline is a float stored per phase, and the timer, when it fires, either acts or re-arms itself for the
current deadline (a cancel and re-arm happens only when a new deadline is earlier than the armed one). Per received
chunk: two comparisons; per request: a `loop.time()` and a few comparisons in callbacks uvicorn calls anyway.

This relies on uvicorn's protocol internals (its parser callbacks, `cycle`, `pipeline`, `connections`, `flow`);
tests/integration/test_http_limits.py drives it over real sockets, so an incompatible uvicorn fails there.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

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


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, head caps and a connection cap; see the module docstring.

    Configure it with `protocol_class`: the limits (and the metrics to count refusals in) are class attributes,
    because uvicorn instantiates the class itself, once per connection."""

    limits: ClassVar[HttpLimits]
    metrics: ClassVar[Metrics | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]  # a float is fine
        self._app = self.app
        self._phase = _HEAD
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._head_bytes = 0  # bytes received while the current head is incomplete (an upper bound of its size)
        self._chunk = 0  # the size of the chunk being parsed
        self._began_mid_chunk = False  # the current head began after a request ended inside the same chunk

    # --- deadlines ------------------------------------------------------------------------------------------------

    def _set_deadline(self, when: float) -> None:
        self._deadline = when
        timer = self._timer
        if timer is None or when < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(when, self._on_timer)
            self._timer_at = when

    def _begin_head(self) -> None:
        self._phase = _HEAD
        self._head_bytes = 0
        self._set_deadline(self.loop.time() + self.limits.header_timeout)

    def _on_timer(self) -> None:
        self._timer = None
        phase = self._phase
        if phase == _BETWEEN or self.transport.is_closing():
            return  # the timer is armed again when the next request begins
        now = self.loop.time()
        if now < self._deadline:  # a later phase moved the deadline on
            self._set_deadline(self._deadline)
        elif phase == _BODY and self.flow.read_paused:  # the application is not reading: not the client's doing
            self._set_deadline(now + self.limits.body_timeout)
        else:
            self._refuse(HEADER_TIMEOUT if phase == _HEAD else BODY_TIMEOUT)

    def _refuse(self, refusal: _Refusal) -> None:
        """Answer `refusal` if no response is under way on this connection, then close it."""
        if self.metrics is not None:
            self.metrics.http_refusals.labels(refusal.reason).inc()
        cycle = self.cycle
        if self._phase == _BODY:
            idle = not self.pipeline and not cycle.response_started  # the cycle is this request's
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
        super().connection_made(transport)
        self.headers = []
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = _BETWEEN
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus the head accounting; its own turns a callback's exception into a 400.
        self._unset_keepalive_if_required()
        if self._phase == _BETWEEN:
            self._begin_head()
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
            if self._began_mid_chunk:  # this chunk's share of the head is unknown: checked when the head ends
                self._began_mid_chunk = False
            else:
                self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(HEADER_TOO_LARGE)
            elif len(self.headers) > self.limits.max_headers:
                self._refuse(TOO_MANY_HEADERS)

    def _invalid(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != _HEAD:  # the previous request ended inside this chunk (pipelining)
            self._begin_head()
            self._began_mid_chunk = True
        # else: the deadline set when the connection opened or the first byte of this request came stands

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.headers) > limits.max_headers:
            raise _Refused(TOO_MANY_HEADERS)
        if self._head_bytes + self._chunk > limits.max_header_bytes and self._head_size() > limits.max_header_bytes:
            raise _Refused(HEADER_TOO_LARGE)
        self._began_mid_chunk = False
        self._phase = _BODY
        self._set_deadline(self.loop.time() + limits.body_timeout)
        self.app = self._too_many_connections if len(self.connections) > limits.max_connections else self._app
        super().on_headers_complete()

    def _head_size(self) -> int:
        """The head's size as parsed: request line and header fields (the exact check when the bound is over)."""
        return len(self.url) + 16 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        self._phase = _BETWEEN
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase != _BETWEEN:  # the next request has begun: its deadline governs, not the idle timeout
            self._unset_keepalive_if_required()

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
        pass

    Configured.limits = limits
    Configured.metrics = metrics
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
        # The protocol applies the exact (float) value; uvicorn's own setting is an int.
        "timeout_keep_alive": max(1, math.ceil(settings.http_keep_alive_timeout)),
    }
    values.update(options)
    return uvicorn.Config(application, **values)
