"""Sign-in, sessions, CSRF and SSO: every dashboard and API route is closed without a session."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route
from typer.testing import CliRunner

from ghingest.app.auth import SESSION_COOKIE, require_reader
from ghingest.app.cli import app as cli_app
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.app.users import UsersFile, hash_password
from ghingest.dashboard.mount import build_gate
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.dashboard_support import csrf_of, login_form_token, session_client

PAGES = ["/", "/?q=x&state=published", "/releases/1", "/repos/octo-org/octo-repo", "/events", "/deliveries/d-1"]
API = ["/api/releases", "/api/releases/1", "/api/events", "/api/deliveries/d-1"]


def test_every_page_redirects_to_sign_in_without_a_session(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/login?next="), path
        assert client.get("/ui/repositories", params={"q": "o"}).status_code == 303


def test_api_stream_and_posts_answer_401_without_a_session(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for path in API:
            assert client.get(path).status_code == 401, path
        assert client.get("/live").status_code == 401
        assert client.post("/deliveries/d-1/reprocess", data={"csrf_token": "x"}).status_code == 401
        assert client.post("/logout", data={"csrf_token": "x"}).status_code == 401


def test_sign_in_link_sets_a_safe_cookie_and_drops_the_token_from_the_url(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/login", params={"token": TOKEN, "next": "/events?status=failed"})
        assert response.status_code == 303
        assert response.headers["location"] == "/events?status=failed"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie  # plain HTTP here
        assert TOKEN not in response.headers["set-cookie"]
        assert client.get("/events").status_code == 200
        assert client.get("/api/releases").status_code == 200  # the read API accepts the session too


def test_sign_in_link_never_redirects_off_site(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            response = client.get("/login", params={"token": TOKEN, "next": target})
            assert response.headers["location"] == "/", target


def test_a_wrong_token_signs_nobody_in(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/login", params={"token": "wrong-token-123456"})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert client.get("/").status_code == 303


def test_sign_in_form_needs_its_form_token(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert client.post("/login", data={"token": TOKEN}).status_code == 403
        response = client.post("/login", data={"token": TOKEN, "login_token": login_form_token(page.text)})
        assert response.status_code == 303
        assert client.get("/").status_code == 200


def test_cookie_is_secure_behind_https(make_settings: Callable[..., Settings]) -> None:
    with ThreadedServer(Runtime.build(make_settings(public_url="https://ghingest.example"))) as server:
        response = httpx.get(f"{server.url}/login", params={"token": TOKEN}, timeout=10)
        assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(("proxies", "secure"), [("127.0.0.1", True), ("10.0.0.0/8", False)])
def test_forwarded_https_makes_the_cookie_secure_only_through_a_trusted_proxy(
    make_settings: Callable[..., Settings], proxies: str, secure: bool
) -> None:
    with ThreadedServer(Runtime.build(make_settings(trusted_proxies=proxies))) as server:
        response = httpx.get(
            f"{server.url}/login", params={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}, timeout=10
        )
        assert response.status_code == 303
        assert ("secure" in response.headers["set-cookie"].lower()) is secure


def test_users_file_sign_in_with_hashed_password(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["users", "hash", "alice"], input="correct horse battery\n" * 2)
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith("alice:$argon2id$")
    users = tmp_path / "users"
    users.write_text("# dashboard users\n" + line + "\n", encoding="utf-8")
    assert UsersFile(users).verify("alice", "correct horse battery") is not None
    with (
        ThreadedServer(Runtime.build(make_settings(users_file=users))) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        form = login_form_token(client.get("/login").text)
        bad = {"username": "alice", "password": "wrong", "login_token": form}
        assert client.post("/login", data=bad).status_code == 401
        good = {"username": "alice", "password": "correct horse battery", "login_token": form}
        assert client.post("/login", data=good).status_code == 303
        page = client.get("/")
        assert page.status_code == 200
        assert "alice" in page.text
        # Changing the password ends the sessions made with the old one.
        users.write_text("alice:" + hash_password("new password 123") + "\n", encoding="utf-8")
        assert client.get("/").status_code == 303


def test_reprocess_is_refused_without_the_right_csrf_token(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as plain:
        request = signed(release(), delivery_id="csrf-delivery")
        assert post_webhook(plain, request).status_code == 202
    with session_client(server) as client:
        wait_until(lambda: client.get("/deliveries/csrf-delivery").status_code == 200)
        page = client.get("/deliveries/csrf-delivery")
        token = csrf_of(page.text)
        path = "/deliveries/csrf-delivery/reprocess"
        assert client.post(path).status_code == 403
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403
        cross_site = client.post(path, data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
        assert cross_site.status_code == 403
        response = client.post(path, data={"csrf_token": token}, headers={"Origin": server.url})
        assert response.status_code == 303


def test_sign_out_ends_the_session_even_for_a_copied_cookie(server: ThreadedServer) -> None:
    with session_client(server) as client:
        cookie = dict(client.cookies)
        token = csrf_of(client.get("/").text)
        response = client.post("/logout", data={"csrf_token": token})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert client.get("/").status_code == 303
    with httpx.Client(base_url=server.url, cookies=cookie, timeout=10) as copied:
        assert copied.get("/").status_code == 303
        assert copied.get("/api/releases").status_code == 401


def test_an_invalid_bearer_token_fails_closed_even_with_a_session(server: ThreadedServer) -> None:
    with session_client(server) as client:
        response = client.get("/api/releases", headers={"Authorization": "Bearer wrong-token-0000"})
        assert response.status_code == 401


@pytest.mark.parametrize(("proxies", "trusted"), [("10.0.0.0/8", False), ("127.0.0.1", True)])
def test_sso_header_is_trusted_only_from_configured_proxies(
    make_settings: Callable[..., Settings], proxies: str, trusted: bool
) -> None:
    settings = make_settings(sso_header="X-Forwarded-User", trusted_proxies=proxies)
    headers = {"X-Forwarded-User": "mallory"}
    with (
        ThreadedServer(Runtime.build(settings)) as server,
        httpx.Client(base_url=server.url, timeout=10, headers=headers) as client,
    ):
        page = client.get("/")
        api = client.get("/api/releases")
        if trusted:
            assert page.status_code == 200
            assert re.search(r'class="user"[^>]*>mallory<', page.text)
            assert api.status_code == 200
        else:
            assert page.status_code == 303
            assert api.status_code == 401


PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/openapi.json"),
}


def _routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through included routers (not the static files mount)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute | Route):
            yield prefix + route.path, set(route.methods or ())


def test_every_route_the_app_has_is_closed_without_a_session(server: ThreadedServer) -> None:
    """Walks the application's own route table, so that a route added later is covered too."""
    checked = 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for template, methods in _routes(server.app.api.routes):
            for method in sorted(methods - {"HEAD"}):
                if (method, template) in PUBLIC:
                    continue
                path = re.sub(r"\{[^}]+\}", "1", template)
                response = client.request(method, path, headers={"Content-Type": "application/json"}, content=b"{}")
                if response.status_code == 303:
                    assert response.headers["location"].startswith("/login?next="), (method, path)
                else:
                    assert response.status_code == 401, (method, path, response.status_code)
                checked += 1
    assert checked >= 12


def test_a_session_cannot_post_to_the_api_without_the_csrf_header(
    make_settings: Callable[..., Settings],
) -> None:
    runtime = Runtime.build(make_settings())
    runtime.backend.resources.upgrade()  # sessions are checked against the revocations table
    app = FastAPI()
    app.state.gate = build_gate(runtime)

    @app.post("/api/change", dependencies=[Depends(require_reader)])
    async def change() -> dict[str, str]:
        return {"changed": "yes"}

    gate = app.state.gate
    cookie = gate.session_for_token(TOKEN)
    csrf = gate.from_cookie(cookie).csrf

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            codes = [(await client.post("/api/change")).status_code]
            client.cookies.set(SESSION_COOKIE, cookie)
            codes.append((await client.post("/api/change")).status_code)
            codes.append((await client.post("/api/change", headers={"X-CSRF-Token": "forged"})).status_code)
            codes.append((await client.post("/api/change", headers={"X-CSRF-Token": csrf})).status_code)
            client.cookies.clear()
            codes.append((await client.post("/api/change", headers={"Authorization": f"Bearer {TOKEN}"})).status_code)
            return codes

    assert asyncio.run(calls()) == [401, 403, 403, 200, 200]
    asyncio.run(runtime.backend.resources.close())
