"""The client behind trusted proxies: the right-most `X-Forwarded-For` entry that is not a trusted proxy."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ghingest.app.proxies import PEER_SCOPE_KEY, ProxyHeadersMiddleware, TrustedProxies

PROXIES = TrustedProxies(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("203.0.113.1, 198.51.100.7", "198.51.100.7"),  # the left part was written by the client
        ("198.51.100.7, 10.1.2.3", "198.51.100.7"),  # a chain of trusted proxies is walked through
        ("10.1.2.3, 10.4.5.6", "10.1.2.3"),  # every entry a proxy: the left-most
        ("198.51.100.7:4711", "198.51.100.7"),
        ("[2001:db8::1]:4711, ::1", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
        ("unknown, 10.1.2.3", "unknown"),  # not an address: untrusted, so it is the client
        (" , ", None),
    ],
)
def test_client_behind(header: str, client: str | None) -> None:
    assert PROXIES.client_behind(header) == client


def test_trusts_only_configured_networks() -> None:
    assert PROXIES.trusts("10.9.9.9")
    assert PROXIES.trusts("::ffff:10.0.0.1")  # an IPv4-mapped peer on a dual-stack socket
    assert not PROXIES.trusts("127.0.0.1")
    assert not PROXIES.trusts("not-an-address")
    assert not PROXIES.trusts(None)
    assert not TrustedProxies([])


def _seen(peer: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, _receive: Any, _send: Any) -> None:
        seen.update(scope)

    scope = {"type": "http", "client": (peer, 5555), "scheme": "http", "headers": headers}
    asyncio.run(ProxyHeadersMiddleware(app, PROXIES)(scope, None, None))  # type: ignore[arg-type]
    return seen


def test_middleware_applies_headers_from_a_trusted_peer_and_keeps_the_peer() -> None:
    scope = _seen("10.0.0.1", [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")])
    assert scope["client"] == ("198.51.100.7", 0)
    assert scope["scheme"] == "https"
    assert scope[PEER_SCOPE_KEY] == "10.0.0.1"


def test_middleware_ignores_headers_from_any_other_peer() -> None:
    scope = _seen("127.0.0.1", [(b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-proto", b"https")])
    assert scope["client"] == ("127.0.0.1", 5555)
    assert scope["scheme"] == "http"
    assert scope[PEER_SCOPE_KEY] == "127.0.0.1"
