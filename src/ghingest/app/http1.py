"""A small HTTP/1.1 client for forwards: POST with keep-alive connections to one origin, over asyncio streams and h11.

The protocol is h11's (the sans-I/O HTTP/1.1 library httpx is built on): it frames the request (Content-Length),
parses the answer (interim 1xx answers, sized, chunked, or delimited by the end of the connection; HTTP/1.0
answers), decides whether the connection can carry another request (not after `Connection: close` or an HTTP/1.0
answer: `our_state`/`their_state`, `start_next_cycle()`) and rejects what is not HTTP/1.x. This module only moves
bytes between h11 and an asyncio stream (TLS by `ssl`), and keeps idle connections per origin.

Why not httpx itself: a forward is one POST whose answer matters only for its status, its `Retry-After` and a short
excerpt; httpx spends ~1.5 ms of CPU per request on this path (its pool scans every connection per request), this
client ~0.15 ms, most of it h11's: the difference between ~300 and well over 1,000 forwards per second on a small
machine (figures in ADR 0006). What this client does not do, on purpose: redirects (a 3xx is an answer), proxies,
cookies, HTTP/2, decompression. At most `max_body` bytes of an answer are read: a longer body is cut and its
connection closed instead of drained. A reused idle connection that turns out closed before any byte of the answer
arrived is replaced once (the server cannot have answered); once an answer has begun, nothing is sent again.

Errors (all `forward_transport.TransportError`): `ConnectFailed` (no connection), `TlsFailed` (the handshake),
`ProtocolFailed` (an answer that is not HTTP/1.x, a connection that closed or failed before the answer was complete,
a request h11 refuses to frame); a timeout is the caller's `asyncio.timeout`, which closes the connection in use.
`Origin` is a `forward_transport.ForwardTransport`; `transport(options)` builds one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from ghingest.app.forward_transport import (
    Answer,
    ConnectFailed,
    ProtocolFailed,
    TlsFailed,
    TransportError,
    TransportOptions,
)

MAX_HEAD = 64 * 1024  # the largest answer head (status line and headers) accepted
READ_SIZE = 64 * 1024
_SKIPPED = frozenset({"host", "content-length", "connection", "transfer-encoding"})  # set here, never by the caller
_NOT_IN_VALUE = re.compile(rb"[\x00\r\n\x0b\x0c]")  # h11 refuses these in a header value


HttpFailure = TransportError
__all__ = ["Answer", "ConnectFailed", "HttpFailure", "Origin", "ProtocolFailed", "TlsFailed", "transport"]


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection

    def reusable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _StaleConnection(Exception):
    """A reused connection was closed before any byte of the answer: the server cannot have answered the request."""


class Origin:
    """Keep-alive connections to one scheme://host:port, at most `size` of them idle."""

    def __init__(self, url: str, *, size: int, max_body: int = 4096, ca_bundle: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an absolute http:// or https:// URL is required")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self._host = self.host_header.encode("idna")
        self.size = size
        self.max_body = max_body
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context(cafile=ca_bundle) if self.tls else None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None, limit=READ_SIZE
            )
        except ssl.SSLError as exc:
            raise TlsFailed(f"{exc.__class__.__name__}: {exc}"[:200]) from None
        except OSError as exc:
            raise ConnectFailed(f"{exc.__class__.__name__}: {exc}"[:200]) from None
        return _Connection(reader, writer, h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD))

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable():
                return connection
            connection.close()
        return None

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """POST `body` to `target` (path and query). A reused connection that turns out closed is replaced once."""
        try:
            request = _request(target or "/", self._host, headers, len(body))
        except h11.LocalProtocolError as exc:
            raise ProtocolFailed(f"the request cannot be sent: {exc}"[:200]) from None
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, request, body, reused=True)
            except _StaleConnection:
                pass  # the server closed the idle connection before it answered this request: a new one is safe
        return await self._exchange(await self._connect(), request, body, reused=False)

    async def _exchange(self, connection: _Connection, request: h11.Request, body: bytes, *, reused: bool) -> Answer:
        keep = False
        try:
            protocol = connection.protocol
            data = b"".join(
                _bytes(protocol.send(event)) for event in (request, h11.Data(data=body), h11.EndOfMessage())
            )
            answer, complete = await self._answer(connection, data, reused=reused)
            if complete and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
                protocol.start_next_cycle()  # both sides keep the connection open (not HTTP/1.0, no Connection: close)
                keep = True
            return answer
        finally:
            if keep and len(self._idle) < self.size and connection.reusable():
                self._idle.append(connection)
            else:
                connection.close()

    async def _answer(self, connection: _Connection, request: bytes, *, reused: bool) -> tuple[Answer, bool]:
        """Send the request, read the answer (the body up to `max_body`), and say whether it was read to its end."""
        protocol, reader = connection.protocol, connection.reader
        received = 0
        status = 0
        headers: dict[str, str] = {}
        body = bytearray()
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    if status and len(body) >= self.max_body:  # enough: the rest is not read, the connection closed
                        return Answer(status, headers, bytes(body[: self.max_body])), False
                    data = await reader.read(READ_SIZE)
                    if not data and not received:
                        if reused:
                            raise _StaleConnection
                        raise ProtocolFailed("the connection closed before an answer")
                    received += len(data)
                    protocol.receive_data(data)  # b"": the end of the connection, which h11 judges
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
                elif isinstance(event, h11.Data):
                    if len(body) < self.max_body:
                        body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return Answer(status, headers, bytes(body[: self.max_body])), True
                # h11.InformationalResponse (1xx): the real answer follows. No other event can come before the end.
        except h11.RemoteProtocolError as exc:
            raise ProtocolFailed(f"the answer is not valid HTTP/1.x: {exc}"[:200]) from None
        except ConnectionError as exc:
            if reused and not received:
                raise _StaleConnection from exc
            raise ProtocolFailed(f"the connection failed mid-answer: {exc.__class__.__name__}") from None
        except OSError as exc:
            raise ProtocolFailed(f"the connection failed: {exc.__class__.__name__}: {exc}"[:200]) from None

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


def transport(options: TransportOptions) -> Origin:
    """The `TransportFactory` of this client."""
    if options.proxy:
        raise ValueError("this client does not support proxies")
    return Origin(options.url, size=options.size, max_body=options.max_body, ca_bundle=options.ca_bundle)


def _request(target: str, host: bytes, headers: Mapping[str, str], length: int) -> h11.Request:
    """The request head: Host and Content-Length are this client's; a header value h11 refuses (a line break, a
    NUL, surrounding blanks) is cleaned and tried again, a header name it refuses is a `LocalProtocolError`."""
    fields = [(b"Host", host), (b"Content-Length", b"%d" % length)]
    fields += [
        (name.encode("latin-1", errors="replace"), value.encode("latin-1", errors="replace"))
        for name, value in headers.items()
        if name.lower() not in _SKIPPED
    ]
    raw_target = target.encode("latin-1", errors="replace")
    try:
        return h11.Request(method=b"POST", target=raw_target, headers=fields)
    except h11.LocalProtocolError:
        cleaned = [(name, _NOT_IN_VALUE.sub(b" ", value).strip(b" \t")) for name, value in fields]
        return h11.Request(method=b"POST", target=raw_target, headers=cleaned)


def _bytes(data: bytes | None) -> bytes:
    return data or b""  # h11 returns None only for ConnectionClosed, which is never sent here
