"""Sign-out holds across a restart and across processes on one database, as real `ghingest` processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, wait_until
from tests.dashboard_support import csrf_of
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow
CROSS_PROCESS_BOUND = 5.0  # seconds; the cache's bound is GHINGEST_SESSION_REVOCATION_CACHE (1 s) plus a commit


def _session(url: str) -> dict[str, str]:
    response = httpx.get(f"{url}/login", params={"token": TOKEN}, timeout=10)
    assert response.status_code == 303, response.text
    return dict(response.cookies)


def _page(url: str, cookies: dict[str, str], path: str = "/") -> int:
    return httpx.get(f"{url}{path}", cookies=cookies, timeout=10).status_code


def _sign_out(url: str, cookies: dict[str, str]) -> None:
    csrf = csrf_of(httpx.get(f"{url}/", cookies=cookies, timeout=10).text)
    response = httpx.post(f"{url}/logout", data={"csrf_token": csrf}, cookies=cookies, timeout=10)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_a_signed_out_cookie_is_refused_after_a_restart(serve: ServeProcess) -> None:
    serve.start()
    signed_out, kept = _session(serve.url), _session(serve.url)
    assert _page(serve.url, signed_out) == 200
    _sign_out(serve.url, signed_out)
    assert _page(serve.url, signed_out) == 303
    serve.stop()
    serve.start()  # a new process on the same database and session secret
    assert _page(serve.url, signed_out) == 303
    assert _page(serve.url, signed_out, "/api/releases") == 401
    assert _page(serve.url, kept) == 200  # the restart itself ends no session


def test_a_sign_out_through_one_process_is_honoured_by_another(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path)
    dashboard = ServeProcess(tmp_path, command="dashboard")  # same directory: same database and secret
    try:
        serve.start()
        dashboard.start()
        signed_out, kept = _session(serve.url), _session(serve.url)
        assert _page(dashboard.url, signed_out) == 200
        assert _page(serve.url, signed_out) == 200  # seen (and cached as not revoked) by serve
        _sign_out(dashboard.url, signed_out)
        assert _page(dashboard.url, signed_out) == 303
        started = time.monotonic()
        wait_until(lambda: _page(serve.url, signed_out) == 303, timeout=CROSS_PROCESS_BOUND)
        assert time.monotonic() - started < CROSS_PROCESS_BOUND
        assert _page(serve.url, signed_out, "/api/releases") == 401
        assert _page(serve.url, kept) == 200
        assert _page(dashboard.url, kept) == 200
    finally:
        dashboard.stop()
        serve.stop()
