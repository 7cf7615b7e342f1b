"""Who a request really came from: the TCP peer, and the client behind it when the peer is a trusted proxy.

uvicorn's own proxy-header rewriting is off in every command (`cli._listen`): it trusts `X-Forwarded-For` from
loopback by default and overwrites the peer in `scope["client"]`, after which nothing can tell a local process that
sends the header from the proxy. `ProxyHeadersMiddleware` does the rewriting instead, with the one list of trusted
proxies (`GHINGEST_TRUSTED_PROXIES`), and first keeps the real peer in the scope (`PEER_SCOPE_KEY`), which the SSO
check reads (`real_peer`). Only when that peer is a trusted proxy:

- `scope["client"]` becomes the right-most address of `X-Forwarded-For` that is not a trusted proxy (each proxy
  appends the address it saw; whatever lies left of the first untrusted one was written by the client itself);
- `scope["scheme"]` becomes the right-most `X-Forwarded-Proto` value, when it is `http` or `https` (`ws`/`wss`).

From any other peer both headers are ignored: `request.client` is the peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

PEER_SCOPE_KEY = "ghingest.peer"  # the TCP peer's address, before any proxy header is applied
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 on a dual-stack socket is 10.0.0.1
    return address


def _host_of(entry: str) -> str:
    """The address of one `X-Forwarded-For` entry, without a port (`1.2.3.4:80`, `[::1]:80`) or quotes."""
    entry = entry.strip().strip('"')
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    if entry.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has more than one colon
        return entry.partition(":")[0]
    return entry


class TrustedProxies:
    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str | None) -> bool:
        address = _address(host) if host else None
        return address is not None and any(address in network for network in self._networks)

    def client_behind(self, forwarded_for: str) -> str | None:
        """The right-most entry of an `X-Forwarded-For` chain that is not a trusted proxy (the left-most when all
        are); None for an empty header."""
        entries = [_host_of(e) for e in forwarded_for.split(",")]
        entries = [e for e in entries if e]
        for entry in reversed(entries):
            if not self.trusts(entry):
                return entry
        return entries[0] if entries else None


def _last_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    return values[-1].decode("latin-1").rsplit(",", 1)[-1].strip().lower()


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            peer = client[0] if client else None
            scope[PEER_SCOPE_KEY] = peer
            if self.proxies.trusts(peer):
                self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope) -> None:
        headers = scope["headers"]
        forwarded = [value.decode("latin-1") for key, value in headers if key == b"x-forwarded-for"]
        if forwarded:
            client = self.proxies.client_behind(",".join(forwarded))
            if client:
                scope["client"] = (client, 0)
        proto = _last_value(headers, b"x-forwarded-proto")
        if proto in ("http", "https"):
            scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")


def real_peer(connection: HTTPConnection) -> str | None:
    """The TCP peer's address; None when unknown (including an application served without the middleware)."""
    peer = connection.scope.get(PEER_SCOPE_KEY)
    return peer if isinstance(peer, str) else None


def client_address(connection: HTTPConnection) -> str:
    """The client's address after trusted-proxy resolution (what throttling and logs use)."""
    return connection.client.host if connection.client is not None else "unknown"
