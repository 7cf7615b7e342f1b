"""Failed sign-ins are throttled per user name and per client address (after trusted-proxy resolution): 429 with
Retry-After and a message saying when to try again; a success starts the user's count over."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.app.users import hash_password
from tests.conftest import TOKEN, ThreadedServer
from tests.dashboard_support import login_form_token

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def alice_line() -> str:
    return f"alice:{hash_password(PASSWORD)}:viewer"


@pytest.fixture
def users_file(tmp_path: Path, alice_line: str) -> Path:
    path = tmp_path / "users"
    path.write_text(alice_line + "\n", encoding="utf-8")
    return path


@pytest.fixture
def limited(make_settings: Callable[..., Settings], users_file: Path) -> Iterator[ThreadedServer]:
    settings = make_settings(
        users_file=users_file,
        sign_in_user_burst=3,
        sign_in_user_interval=120,
        sign_in_client_burst=6,
        sign_in_client_interval=60,
    )
    with ThreadedServer(Runtime.build(settings)) as server:
        yield server


def _password(client: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    form = login_form_token(client.get("/login").text)
    data = {"username": name, "password": password, "login_token": form}
    return client.post("/login", data=data, headers=headers)


def _retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.status_code
    return int(response.headers["retry-after"])


def test_failed_passwords_are_throttled_per_user_name(limited: ThreadedServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        assert [_password(client, "alice", "wrong").status_code for _ in range(3)] == [401, 401, 401]
        throttled = _password(client, "alice", "wrong")
        assert 110 <= _retry_after(throttled) <= 120
        assert re.search(
            r"Too many failed sign-ins\. Try again in \d+ seconds \(at \d\d:\d\d:\d\d UTC\)", throttled.text
        )
        assert "set-cookie" not in throttled.headers
        # Even the right password waits: the limit applies before any verification.
        assert _password(client, "alice", PASSWORD).status_code == 429
        # Another user name has its own count (the client's is not exhausted yet).
        assert _password(client, "bob", "wrong").status_code == 401


def test_a_success_starts_the_user_count_over(limited: ThreadedServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        assert [_password(client, "alice", "wrong").status_code for _ in range(2)] == [401, 401]
        assert _password(client, "alice", PASSWORD).status_code == 303
        client.cookies.clear()
        assert [_password(client, "alice", "wrong").status_code for _ in range(3)] == [401, 401, 401]
        assert _password(client, "alice", "wrong").status_code == 429


def test_failures_are_throttled_per_client_across_names_and_tokens(limited: ThreadedServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        codes = [_password(client, f"user-{n}", "wrong").status_code for n in range(3)]
        form = login_form_token(client.get("/login").text)
        codes.append(client.post("/login", data={"token": "wrong-token-1234", "login_token": form}).status_code)
        codes += [client.get("/login", params={"token": f"wrong-token-{n}"}).status_code for n in range(2)]
        assert codes == [401] * 6
        assert _password(client, "user-new", "wrong").status_code == 429
        link = client.get("/login", params={"token": "wrong-token-9"}, headers={"Accept": "application/json"})
        assert link.status_code == 429
        body = link.json()
        assert body["error"] == "too_many_requests"
        assert body["retry_after"] == int(link.headers["retry-after"])
        assert 50 <= body["retry_after"] <= 60
        assert "Try again in" in body["detail"]
        # A valid token from the throttled client waits too.
        assert client.get("/login", params={"token": TOKEN}).status_code == 429


def test_successful_sign_ins_do_not_count_against_the_client(limited: ThreadedServer) -> None:
    with httpx.Client(base_url=limited.url, timeout=10) as client:
        for _ in range(10):
            assert client.get("/login", params={"token": TOKEN}).status_code == 303
            client.cookies.clear()


@pytest.mark.parametrize(("proxies", "separate"), [("127.0.0.1", True), ("10.0.0.0/8", False)])
def test_the_client_is_the_address_behind_a_trusted_proxy_only(
    make_settings: Callable[..., Settings], proxies: str, separate: bool
) -> None:
    settings = make_settings(trusted_proxies=proxies, sign_in_client_burst=2, sign_in_client_interval=60)
    with ThreadedServer(Runtime.build(settings)) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        first = {"X-Forwarded-For": "198.51.100.1"}
        codes = [client.get("/login", params={"token": "wrong-token"}, headers=first).status_code for _ in range(3)]
        assert codes == [401, 401, 429]
        # Another forwarded address: a client of its own through a trusted proxy; a spoof from anywhere else.
        other = client.get("/login", params={"token": "wrong-token"}, headers={"X-Forwarded-For": "198.51.100.2"})
        assert other.status_code == (401 if separate else 429)


def test_a_full_password_pool_answers_503_at_once_and_counts_nothing(limited: ThreadedServer) -> None:
    pool = limited.app.api.state.gate.password_pool
    capacity, pool.capacity = pool.capacity, 0  # as if every thread and every queue slot were taken
    try:
        with httpx.Client(base_url=limited.url, timeout=10) as client:
            for _ in range(5):  # more than the user's burst: refusals for being busy are not failures
                busy = _password(client, "alice", PASSWORD)
                assert busy.status_code == 503
                assert busy.headers["retry-after"] == "1"
                assert "Sign-in is busy right now. Try again in 1 second." in busy.text
                assert "set-cookie" not in busy.headers
            as_json = _password(client, "alice", PASSWORD, Accept="application/json")
            assert as_json.status_code == 503
            assert as_json.json()["error"] == "service_unavailable"
            assert client.get("/login", params={"token": TOKEN}).status_code == 303  # tokens need no pool
            client.cookies.clear()
            pool.capacity = capacity
            assert _password(client, "alice", PASSWORD).status_code == 303
    finally:
        pool.capacity = capacity
