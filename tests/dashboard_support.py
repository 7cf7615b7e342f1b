"""Helpers for the dashboard's HTTP and browser tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conftest import TOKEN, ThreadedServer

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LOGIN_FORM = re.compile(r'name="login_token" value="([^"]+)"')


@contextmanager
def session_client(server: ThreadedServer, *, token: str = TOKEN) -> Iterator[httpx.Client]:
    """An HTTP client signed in through a sign-in link (cookie in its jar), redirects not followed."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/login", params={"token": token})
        assert response.status_code == 303, response.text
        yield client


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login_form_token(html: str) -> str:
    match = _LOGIN_FORM.search(html)
    assert match, "no login form token in the page"
    return match.group(1)
