"""A small HTTP/1.1 client for forwards: POST with keep-alive connections to one origin, over asyncio streams.

Why not httpx: a forward is one POST whose answer matters only for its status, its `Retry-After` and a short
excerpt; httpx spends ~1.5 ms of CPU per request on this path (its pool scans every connection per request), asyncio
streams ~0.05 ms, which is the difference between a few hundred and several thousand forwards per second on a
small machine. What this client does not do, on purpose: redirects (a 3xx is an answer), proxies, cookies, HTTP/2,
decompression. Bodies beyond `max_body` are not read: the connection is closed instead of drained.

Errors: `ConnectFailed` (no connection), `ProtocolFailed` (an answer that is not HTTP/1.x, or a connection that
closed mid-answer); a timeout is the caller's `asyncio.timeout`, which closes the connection in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024


class HttpFailure(Exception):
    """The request got no HTTP answer."""


class ConnectFailed(HttpFailure):
    pass


class ProtocolFailed(HttpFailure):
    pass


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-cased names; the last value wins
    body: bytes  # at most `max_body` bytes


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: bool = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Origin:
    """Keep-alive connections to one scheme://host:port, at most `size` of them idle."""

    def __init__(self, url: str, *, size: int, max_body: int = 4096) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an absolute http:// or https:// URL is required")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default_port else f"{host}:{self.port}"
        self.size = size
        self.max_body = max_body
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context() if self.tls else None

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, server_hostname=self.host if self.tls else None, limit=MAX_HEAD
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"{exc.__class__.__name__}: {exc}"[:200]) from None
        return _Connection(reader, writer)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """POST `body` to `target` (path and query). A reused connection that turns out closed is replaced once."""
        head = _request_head(target, self.host_header, headers, len(body))
        connection = self._take_idle()
        if connection is not None:
            try:
                return await self._exchange(connection, head, body)
            except _StaleConnection:
                pass  # the server closed the idle connection before it saw this request: a new one is safe
        return await self._exchange(await self._connect(), head, body, fresh=True)

    async def _exchange(self, connection: _Connection, head: bytes, body: bytes, *, fresh: bool = False) -> Answer:
        keep = False
        try:
            try:
                connection.writer.write(head + body)
                await connection.writer.drain()
                status, headers = await _read_head(connection.reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if not fresh:
                    raise _StaleConnection from exc
                raise ProtocolFailed(f"the connection closed before an answer: {exc.__class__.__name__}") from None
            try:
                answer_body, complete = await _read_body(connection.reader, headers, self.max_body)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
                raise ProtocolFailed(f"the connection failed mid-answer: {exc.__class__.__name__}") from None
            keep = complete and headers.get("connection", "").lower() != "close"
            return Answer(status=status, headers=headers, body=answer_body)
        finally:
            if keep and len(self._idle) < self.size:
                self._idle.append(connection)
            else:
                connection.close()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class _StaleConnection(Exception):
    pass


def _clean(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _request_head(target: str, host: str, headers: Mapping[str, str], length: int) -> bytes:
    lines = [f"POST {target or '/'} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}"]
    for name, value in headers.items():
        if name.lower() not in ("host", "content-length", "connection", "transfer-encoding"):
            lines.append(f"{_clean(name)}: {_clean(value)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ProtocolFailed("the answer's headers are too large") from None
        text = raw.decode("latin-1")
        status_line, _, rest = text.partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolFailed("the answer is not HTTP/1.x")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in rest.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            continue  # an interim answer (100 Continue): the real one follows
        return status, headers


async def _read_body(reader: asyncio.StreamReader, headers: Mapping[str, str], limit: int) -> tuple[bytes, bool]:
    """The body (at most `limit` bytes) and whether it was read completely (so the connection can be reused)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolFailed("bad chunked encoding") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(out), True
            if len(out) + size > limit:
                out += await reader.read(max(0, limit - len(out)))
                return bytes(out[:limit]), False
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None and length.strip().isdigit():
        n = int(length)
        if n <= limit:
            return await reader.readexactly(n), True
        return await reader.read(limit), False
    return await reader.read(limit), False  # delimited by the end of the connection
