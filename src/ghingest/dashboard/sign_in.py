"""`/login` (form, or a `?token=` sign-in link) and `/logout`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.security import CheckedPost, gate_of, safe_next
from ghingest.dashboard.templating import renderer_of

router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _form(request: Request, *, next_url: str, error: str | None = None, status_code: int = 200) -> Response:
    gate = gate_of(request)
    renderer = renderer_of(request)
    if gate.from_session(request) is not None and error is None:
        return RedirectResponse(next_url, status_code=303)
    return renderer.page(
        request,
        "login.html",
        {
            "next": next_url,
            "error": error,
            "login_token": gate.login_form_token(),
            "passwords": gate.users.configured,
        },
        status_code=status_code,
    )


def _signed_in(request: Request, cookie: str, next_url: str) -> Response:
    response = RedirectResponse(next_url, status_code=303)
    gate_of(request).set_cookie(response, request, cookie)
    return response


@router.get("/login")
async def login_page(request: Request, next: str | None = None, token: str | None = None) -> Response:
    next_url = safe_next(next)
    if token is not None:
        # A sign-in link: sign in, then redirect to a URL without the token (it must not stay in the history).
        cookie = gate_of(request).session_for_token(token)
        if cookie is None:
            return _form(request, next_url=next_url, error="That sign-in link is not valid.", status_code=401)
        return _signed_in(request, cookie, next_url)
    return _form(request, next_url=next_url)


@router.post("/login")
async def login(
    request: Request,
    login_token: Annotated[str | None, Form()] = None,
    next: Annotated[str | None, Form()] = None,
    token: Annotated[str | None, Form()] = None,
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
) -> Response:
    gate = gate_of(request)
    next_url = safe_next(next)
    if not gate.login_form_ok(request, login_token):
        return _form(request, next_url=next_url, error="The form expired; please try again.", status_code=403)
    cookie = None
    if token:
        cookie = gate.session_for_token(token.strip())
    elif username and password is not None:
        # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
        cookie = await asyncio.to_thread(gate.session_for_password, username.strip(), password)
    if cookie is None:
        return _form(request, next_url=next_url, error="Those credentials are not valid.", status_code=401)
    return _signed_in(request, cookie, next_url)


@router.post("/logout")
async def logout(request: Request, principal: CheckedPost) -> Response:
    gate = gate_of(request)
    gate.sign_out(principal)
    response = RedirectResponse("/login", status_code=303)
    gate.clear_cookie(response, request)
    return response
