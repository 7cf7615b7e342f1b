"""The forward client's seam: what the forwarder needs from HTTP, as a Protocol, and a fake for tests.

A `ForwardTransport` POSTs to one destination (`TransportOptions.url`: its origin, its TLS and proxy options) over
connections of its own, at most `size` of them; the forwarder builds one per destination through a
`TransportFactory` it is given (default: `ghingest.app.forward_client`, over aiohttp). It answers the status, the
headers and at most `max_body` bytes of the body, follows no redirect, uses no proxy from the environment, and raises
a `TransportError` when there is no complete answer; a timeout is the caller's (`asyncio.timeout`).

`MockTransport` answers from a function, like httpx's `MockTransport`: the forwarder's unit tests run on it, without
sockets.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # lower-cased names; the last value wins
    body: bytes  # at most `max_body` bytes


class TransportError(Exception):
    """The request got no (complete) HTTP answer. The message names no URL path, body or secret."""


class ConnectFailed(TransportError):
    """No connection to the destination (refused, unreachable, a name that does not resolve)."""


class TlsFailed(ConnectFailed):
    """The TLS handshake failed: most often a certificate not trusted by the system store or the `ca_bundle`."""


class ProxyFailed(ConnectFailed):
    """The proxy could not be reached or refused the tunnel (it answered its CONNECT with another status than 2xx)."""


class ProtocolFailed(TransportError):
    """The connection closed or failed before the answer was complete, or the answer was not HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class TransportOptions:
    url: str  # the destination's URL: http:// or https://
    size: int = 4  # connections at most (the destination's concurrency)
    max_body: int = 4096  # bytes of an answer's body read at most; the rest is not read (the connection is closed)
    ca_bundle: str | None = None  # a PEM file of CA certificates to verify https destinations (default: the system's)
    proxy: str | None = field(default=None, repr=False)  # http://[user:password@]host:port; may hold a credential


class ForwardTransport(Protocol):
    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """POST `body` to `target` (path and query) on the destination's origin."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...


TransportFactory = Callable[[TransportOptions], ForwardTransport]


# --- checking the options (the route file's and the settings') -------------------------------------------------


def check_proxy(url: str) -> None:
    """Raise ValueError unless `url` is `http://[user:password@]host[:port]` (the message never quotes it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("must be a proxy URL: http://[user:password@]host:port") from None
    if parts.scheme != "http":
        raise ValueError("must be an http:// proxy URL (TLS to the proxy itself is not supported)")
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be a proxy URL: http://[user:password@]host:port, without a path")
    if port == 0:
        raise ValueError("the proxy's port must not be 0")


def check_ca_bundle(path: str) -> None:
    """Raise ValueError unless `path` is a readable PEM file of CA certificates."""
    try:
        ssl.create_default_context(cafile=path)
    except OSError as exc:  # ssl.SSLError is one too
        reason = exc.strerror or exc.__class__.__name__
        if isinstance(exc, ssl.SSLError):
            reason = f"no PEM CA certificates in it ({exc.reason or exc.__class__.__name__})"
        raise ValueError(f"cannot be used as a CA bundle: {reason}") from None


# --- a fake for tests --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SentRequest:
    target: str
    headers: Mapping[str, str]
    body: bytes


Handler = Callable[[SentRequest], Answer | Awaitable[Answer]]


class MockTransport:
    """A `ForwardTransport` whose `handler(request)` answers (or raises); it keeps every request it was given."""

    def __init__(self, handler: Handler, options: TransportOptions | None = None) -> None:
        self.handler = handler
        self.options = options
        self.requests: list[SentRequest] = []
        self.closed = False

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        request = SentRequest(target, dict(headers), body)
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    async def close(self) -> None:
        self.closed = True
