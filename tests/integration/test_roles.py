"""Roles: a viewer reads; only an operator may reprocess, replay, retry dead letters or forward again. Users-file
lines name the role (no role: operator), SSO users get the configured one, API tokens are operators."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from typer.testing import CliRunner

from ghingest.app.auth import OPERATOR_REQUIRED
from ghingest.app.cli import app as cli_app
from ghingest.app.proxies import PEER_SCOPE_KEY
from ghingest.app.runtime import Runtime
from ghingest.app.settings import ConfigError, Settings
from ghingest.app.users import hash_password, parse_users
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.dashboard_support import csrf_of, login_form_token, session_client
from tests.destinations import Answer, Destination, routes_toml
from tests.integration.test_dashboard_auth import _routes

PASSWORD = "correct horse battery"
NOT_STATE_CHANGING = {("POST", "/login"), ("POST", "/logout"), ("POST", "/webhooks/github")}


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def users_file(tmp_path: Path, hashed: str) -> Path:
    path = tmp_path / "users"
    path.write_text(f"# roles\nvera:{hashed}:viewer\notto:{hashed}:operator\nlea:{hashed}\n", encoding="utf-8")
    return path


@pytest.fixture
def refusing() -> Iterator[Destination]:
    with Destination(lambda _r: Answer(status=400, body=b"no")) as dest:
        yield dest


@pytest.fixture
def server(
    make_settings: Callable[..., Settings], tmp_path: Path, users_file: Path, refusing: Destination
) -> Iterator[ThreadedServer]:
    routes = tmp_path / "routes.toml"
    routes.write_text(
        routes_toml(
            {"ci": {"url": refusing.url, "secret": "destination-secret"}},
            [{"name": "to-ci", "events": ["release"], "destinations": ["ci"]}],
        )
    )
    settings = make_settings(users_file=users_file, routes_file=routes, forward_poll_interval=0.05)
    with ThreadedServer(Runtime.build(settings)) as running:
        with httpx.Client(base_url=running.url, timeout=10) as plain:
            assert post_webhook(plain, signed(release(), delivery_id="role-1")).status_code == 202
        with session_client(running) as admin:  # a dead letter to retry, on a processed delivery
            wait_until(lambda: 'name="job_id"' in admin.get("/forwarding/dead-letters").text)
        yield running


@contextmanager
def _signed_in(server: ThreadedServer, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        form = login_form_token(client.get("/login").text)
        response = client.post("/login", data={"username": name, "password": PASSWORD, "login_token": form})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/start"  # no `next`: the role's landing page
        yield client


def _state_changes(client: httpx.Client, csrf: str) -> dict[str, httpx.Response]:
    form = {"csrf_token": csrf}
    return {
        "reprocess": client.post("/deliveries/role-1/reprocess", data=form, headers={"Accept": "text/html"}),
        "retry": client.post("/forwarding/dead-letters/retry", data={**form, "scope": "all"}),
        "forward-again": client.post("/deliveries/role-1/forward-again", data=form),
        "api-replay": client.post(
            "/api/replays", json={"delivery_id": "role-1"}, headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
        ),
    }


def test_a_viewer_sees_no_state_changing_control_and_is_refused_every_one(server: ThreadedServer) -> None:
    with _signed_in(server, "vera") as viewer:
        assert viewer.get("/start").headers["location"] == "/"  # a sign-in's landing: the releases
        assert viewer.get("/overview").status_code == 200
        delivery = viewer.get("/deliveries/role-1").text
        assert "role-1" in delivery
        assert "/reprocess" not in delivery
        assert "forward-again" not in delivery
        dead = viewer.get("/forwarding/dead-letters").text
        assert "role-1" in dead  # the dead letter is listed…
        assert 'name="job_id"' not in dead  # …without a way to retry it
        assert "Retry" not in dead
        assert "/reprocess" not in viewer.get("/events").text
        answers = _state_changes(viewer, csrf_of(viewer.get("/").text))
        for action, response in answers.items():
            assert response.status_code == 403, action
        assert "Operator role required" in answers["reprocess"].text  # a page for a browser
        for action in ("retry", "forward-again", "api-replay"):
            assert answers[action].json() == {"error": "forbidden", "detail": OPERATOR_REQUIRED}, action
    with session_client(server) as admin:  # nothing was retried or replayed
        assert 'name="job_id"' in admin.get("/forwarding/dead-letters").text
        assert "replay 1" not in admin.get("/deliveries/role-1").text


@pytest.mark.parametrize("name", ["otto", "lea"])  # lea's line has no role: operator, as before roles
def test_an_operator_sees_the_controls_and_may_use_them(server: ThreadedServer, name: str) -> None:
    with _signed_in(server, name) as operator:
        assert operator.get("/start").headers["location"] == "/overview"  # a sign-in's landing: the overview
        assert operator.get("/").status_code == 200  # a bookmark of / still shows the releases
        delivery = operator.get("/deliveries/role-1").text
        assert "/reprocess" in delivery
        assert "forward-again" in delivery
        assert 'name="job_id"' in operator.get("/forwarding/dead-letters").text
        csrf = csrf_of(delivery)
        assert operator.post("/deliveries/role-1/forward-again", data={"csrf_token": csrf}).status_code == 303
        assert operator.post("/deliveries/role-1/reprocess", data={"csrf_token": csrf}).status_code == 303


def test_every_state_changing_route_refuses_a_viewer(server: ThreadedServer) -> None:
    """Walks the application's route table, so that a state-changing route added later is covered too."""
    checked = 0
    with _signed_in(server, "vera") as viewer:
        csrf = csrf_of(viewer.get("/").text)
        for template, methods in _routes(server.app.api.routes):
            for method in sorted(methods - {"GET", "HEAD", "OPTIONS"}):
                if (method, template) in NOT_STATE_CHANGING:
                    continue
                path = re.sub(r"\{[^}]+\}", "role-1", template)
                response = viewer.request(method, path, data={"csrf_token": csrf}, headers={"X-CSRF-Token": csrf})
                assert response.status_code == 403, (method, path, response.status_code)
                assert OPERATOR_REQUIRED in response.text.lower(), (method, path)
                checked += 1
    assert checked >= 4


def test_a_role_change_in_the_users_file_applies_at_the_next_request(
    server: ThreadedServer, users_file: Path, hashed: str
) -> None:
    with _signed_in(server, "vera") as vera:
        csrf = csrf_of(vera.get("/").text)
        assert vera.post("/deliveries/role-1/reprocess", data={"csrf_token": csrf}).status_code == 403
        users_file.write_text(f"vera:{hashed}:operator\n", encoding="utf-8")
        assert vera.post("/deliveries/role-1/reprocess", data={"csrf_token": csrf}).status_code == 303
        assert 'name="job_id"' in vera.get("/forwarding/dead-letters").text
        users_file.write_text(f"vera:{hashed}:viewer\n", encoding="utf-8")
        assert vera.post("/deliveries/role-1/reprocess", data={"csrf_token": csrf}).status_code == 403


def test_token_sessions_and_bearer_tokens_are_operators(server: ThreadedServer) -> None:
    with session_client(server) as admin:
        csrf = csrf_of(admin.get("/deliveries/role-1").text)
        assert admin.post("/deliveries/role-1/reprocess", data={"csrf_token": csrf}).status_code == 303
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    replay = httpx.post(f"{server.url}/api/replays", json={"delivery_id": "role-1", "dry_run": True}, headers=bearer)
    assert replay.status_code == 200
    assert replay.json() == {"count": 1, "dry_run": True}


def _sso_csrf(server: ThreadedServer, name: str) -> str:
    """The CSRF token of an SSO user, as the gate derives it (an SSO viewer's pages carry no form)."""
    scope = {"type": "http", "headers": [(b"x-forwarded-user", name.encode())], PEER_SCOPE_KEY: "127.0.0.1"}
    principal = server.app.api.state.gate.from_sso(Request(scope))
    assert principal is not None
    return str(principal.csrf)


@pytest.mark.parametrize(
    ("default_role", "name", "operator"),
    [("viewer", "mallory", False), ("viewer", "BOSS", True), ("operator", "mallory", True)],
)
def test_sso_users_get_the_configured_role(
    make_settings: Callable[..., Settings], default_role: str, name: str, operator: bool
) -> None:
    settings = make_settings(
        sso_header="X-Forwarded-User", trusted_proxies="127.0.0.1", sso_default_role=default_role, sso_operators="boss"
    )
    with (
        ThreadedServer(Runtime.build(settings)) as server,
        httpx.Client(base_url=server.url, headers={"X-Forwarded-User": name}, timeout=10) as client,
    ):
        assert post_webhook(client, signed(release(), delivery_id="sso-1")).status_code == 202
        wait_until(lambda: client.get("/deliveries/sso-1").status_code == 200)
        assert ("/reprocess" in client.get("/deliveries/sso-1").text) is operator
        response = client.post("/deliveries/sso-1/reprocess", data={"csrf_token": _sso_csrf(server, name)})
        assert response.status_code == (303 if operator else 403)


def test_users_hash_prints_the_role() -> None:
    runner = CliRunner()
    for args, role in (
        (["users", "hash", "bob"], "viewer"),
        (["users", "hash", "bob", "--role", "operator"], "operator"),
    ):
        result = runner.invoke(cli_app, args, input=f"{PASSWORD}\n" * 2)
        assert result.exit_code == 0, result.output
        line = result.stdout.strip().splitlines()[-1]
        assert re.fullmatch(rf"bob:\$argon2id\$[^:]+:{role}", line)
        assert parse_users(line)["bob"].role == role
    assert runner.invoke(cli_app, ["users", "hash", "bob", "--role", "admin"], input=f"{PASSWORD}\n" * 2).exit_code == 2


def test_users_file_roles_parse_backward_compatibly(hashed: str) -> None:
    users = parse_users(f"a:{hashed}\nb:{hashed}:viewer\nc:{hashed}:operator\n")
    assert {name: entry.role for name, entry in users.items()} == {"a": "operator", "b": "viewer", "c": "operator"}
    for bad in (f"d:{hashed}:admin", f"d:{hashed}:", "d:not-a-hash:viewer"):
        with pytest.raises(ConfigError, match="line 1"):
            parse_users(bad)
