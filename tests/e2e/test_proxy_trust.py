"""Proxy trust in every listening command, as real processes: the SSO header counts only when the TCP peer itself
is a configured proxy, and `X-Forwarded-For` names the client only when it comes from one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import wait_until
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow
COMMANDS = ["serve", "dashboard"]
Start = Callable[..., ServeProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[ServeProcess] = []

    def run(command: str, **env: str) -> ServeProcess:
        process = ServeProcess(tmp_path, command=command, **env)
        started.append(process)
        return process.start()

    yield run
    for process in started:
        process.stop()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_spoofed_forwarded_for_from_loopback_signs_nobody_in(start: Start, command: str) -> None:
    # A local process claims to be the proxy (10.0.0.5) with X-Forwarded-For; its real peer is 127.0.0.1.
    process = start(command, GHINGEST_SSO_HEADER="X-Forwarded-User", GHINGEST_TRUSTED_PROXIES="10.0.0.5")
    headers = {"X-Forwarded-User": "mallory", "X-Forwarded-For": "10.0.0.5"}
    with httpx.Client(base_url=process.url, headers=headers, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login")
        assert client.get("/api/releases").status_code == 401
        assert client.get("/events", headers={"Accept": "application/json"}).status_code in (303, 401)


@pytest.mark.parametrize("command", COMMANDS)
def test_the_sso_header_from_a_configured_proxy_signs_in(start: Start, command: str) -> None:
    process = start(command, GHINGEST_SSO_HEADER="X-Forwarded-User", GHINGEST_TRUSTED_PROXIES="127.0.0.1")
    headers = {"X-Forwarded-User": "alice", "X-Forwarded-For": "198.51.100.7"}
    with httpx.Client(base_url=process.url, headers=headers, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert re.search(r'class="user"[^>]*>alice<', page.text)
        assert client.get("/api/releases").status_code == 200


def _failed_sign_in_clients(process: ServeProcess) -> list[str]:
    clients = []
    for line in process.output().splitlines():
        if line.startswith("{"):
            record = orjson.loads(line)
            if record.get("event") == "auth.sign_in_failed":
                clients.append(record["client"])
    return clients


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "client"),
    [
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),  # through the trusted proxy: the forwarded client
        ("127.0.0.1", "203.0.113.1, 198.51.100.7, 127.0.0.1", "198.51.100.7"),  # the right-most untrusted one
        ("10.0.0.5", "198.51.100.7", "127.0.0.1"),  # from an untrusted peer: the header is ignored
        ("", "198.51.100.7", "127.0.0.1"),  # no proxy configured: ignored too
    ],
)
def test_request_client_is_the_forwarded_address_only_through_a_trusted_proxy(
    start: Start, command: str, proxies: str, forwarded_for: str, client: str
) -> None:
    """`request.client` as the application sees it, read from the failed sign-in it logs."""
    env = {"GHINGEST_TRUSTED_PROXIES": proxies} if proxies else {}
    process = start(command, **env)
    response = httpx.get(
        f"{process.url}/login", params={"token": "not-a-valid-token"}, headers={"X-Forwarded-For": forwarded_for}
    )
    assert response.status_code == 401
    assert wait_until(lambda: _failed_sign_in_clients(process)) == [client]
