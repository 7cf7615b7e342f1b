"""Page guards: a page needs a signed-in principal (else a redirect to /login), a POST needs its CSRF token, and a
POST that changes state (reprocess, replay, retry, forward again) the operator role (`OperatorPost`)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request

from ghingest.app.auth import Gate, Principal
from ghingest.dashboard.flash import flash_of


class LoginRequired(Exception):
    """No session: the page answers with a redirect to the sign-in page (fetches and streams with 401)."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def gate_of(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")


def safe_next(value: str | None) -> str:
    """Only a path on this site may follow a sign-in (no `//host`, no scheme, no backslash tricks)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class OperatorRequired(Exception):
    """The principal is a viewer: a page (or JSON) answers 403 "operator role required"."""


async def signed_in(request: Request) -> Principal:
    principal = await gate_of(request).identify(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    request.state.principal = principal
    if request.method == "GET":
        request.state.flash = await flash_of(request, principal)  # what the action before this page did
    return principal


async def signed_in_or_401(request: Request) -> Principal:
    principal = await gate_of(request).identify(request, bearer=True)
    if principal is None:
        raise HTTPException(401, detail="sign in first", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(signed_in)]


async def operator_page(principal: CurrentUser) -> Principal:
    """A page for operators only (the audit log): a viewer gets the "operator role required" page."""
    if not principal.operator:
        raise OperatorRequired
    return principal


OperatorPage = Annotated[Principal, Depends(operator_page)]


async def checked_post(
    request: Request, principal: CurrentUser, csrf_token: Annotated[str | None, Form()] = None
) -> Principal:
    """A state-changing POST: signed in, same origin, and the session's CSRF token in the form."""
    if not gate_of(request).csrf_ok(request, principal, csrf_token):
        raise HTTPException(403, detail="the form's CSRF token is missing or wrong; reload the page and try again")
    return principal


CheckedPost = Annotated[Principal, Depends(checked_post)]


async def operator_post(principal: CheckedPost) -> Principal:
    """A state-changing POST (every one but sign-out): a `CheckedPost` by an operator."""
    if not principal.operator:
        raise OperatorRequired
    return principal


OperatorPost = Annotated[Principal, Depends(operator_post)]
