"""Proxy trust in every listening command, as real processes: the SSO header counts only when the TCP peer itself
is a configured proxy, and `X-Forwarded-For` names the client only when it comes from one; the webhook source
allow-list judges that client, from GitHub's `/meta` (a stand-in) or, restarted without it, from its disk cache."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from ghingest.app.hook_allowlist import CACHE_FILE
from tests.conftest import release, signed, wait_until
from tests.e2e.conftest import ServeProcess
from tests.meta_stub import MetaStub

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


def _records(process: ServeProcess, event: str) -> list[dict[str, object]]:
    lines = [line for line in process.output().splitlines() if line.startswith("{")]
    return [record for record in map(orjson.loads, lines) if record.get("event") == event]


@pytest.mark.parametrize("command", ["serve", "receiver"])
def test_the_source_allow_list_judges_the_client_behind_the_proxy_and_outlives_meta(
    start: Start, tmp_path: Path, command: str
) -> None:
    meta = MetaStub().start()
    try:
        env = {
            "GHINGEST_GITHUB_HOOKS_ALLOWLIST": "true",
            "GHINGEST_GITHUB_API_URL": meta.url,
            "GHINGEST_TRUSTED_PROXIES": "127.0.0.1",
        }
        process = start(command, **env)  # ready once GitHub's list is loaded

        def deliver(forwarded_for: str, delivery_id: str) -> httpx.Response:
            request = signed(release(), delivery_id=delivery_id)
            headers = {**request.headers, "X-Forwarded-For": forwarded_for}
            return httpx.post(f"{process.url}/webhooks/github", content=request.body, headers=headers, timeout=10)

        assert deliver("192.30.252.9", "from-github-1").status_code == 202
        refused = deliver("203.0.113.5", "from-elsewhere-1")
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden_source")
        (record,) = wait_until(lambda: _records(process, "delivery.refused_source"))
        assert record["client"] == "203.0.113.5"
        assert set(record) == {"event", "client", "outcome", "status", "level", "timestamp"}  # nothing it sent
        assert "from-elsewhere-1" not in process.output()
        assert (tmp_path / "data" / CACHE_FILE).is_file()
    finally:
        meta.stop()
    process.stop()
    process.start()  # /meta is gone: ready at once from the list kept on disk
    assert _records(process, "github_meta.hooks_loaded")[-1]["source"] == "cache"
    assert deliver("192.30.252.9", "from-github-2").status_code == 202
    assert deliver("203.0.113.5", "from-elsewhere-2").status_code == 403
    assert not _records(process, "github_meta.refresh_failed")  # confirmed within the interval: not fetched again
