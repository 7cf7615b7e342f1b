"""`/login` (form, or a `?token=` sign-in link) and `/logout`.

Failed attempts are throttled per user name and per client address (`Gate.sign_in_with_*`): past the limit the
answer is 429 with `Retry-After` and a message saying when to try again; with every password thread busy it is 503
with `Retry-After: 1`. Each outcome is counted (`ghingest_sign_ins_total`) and each failure logged with the client.

The audit log keeps every sign-in, failed sign-in and sign-out (`ghingest.app.audit`). A failed one names the user
only when the users file knows the name (what was typed in the name field may be a password typed in the wrong
box), and never what was typed as the secret. Throttled and busy attempts are counted and logged, not kept in the
audit log: nothing limits how many of those a client can send, and each would be a write.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ghingest.app import audit
from ghingest.app.auth import SignInAttempt
from ghingest.app.credentials import token_whereabouts
from ghingest.app.logs import get_logger
from ghingest.app.proxies import client_address
from ghingest.app.runtime import runtime_of
from ghingest.core.errors import StoreUnavailable
from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.overview import LANDING
from ghingest.dashboard.security import CheckedPost, gate_of, safe_next
from ghingest.dashboard.templating import renderer_of
from ghingest.ports.audit import SIGN_IN, SIGN_IN_FAILED, SIGN_OUT

router = APIRouter(include_in_schema=False, route_class=PageRoute)
log = get_logger("ghingest.sign_in")


async def _form(
    request: Request,
    *,
    next_url: str,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    gate = gate_of(request)
    renderer = renderer_of(request)
    if error is None and await gate.from_session(request) is not None:
        return RedirectResponse(next_url, status_code=303)
    response = renderer.page(
        request,
        "login.html",
        {
            "next": next_url,
            "error": error,
            "login_token": gate.login_form_token(),
            "passwords": gate.users.configured,
            "token_hint": token_whereabouts(runtime_of(request).api_tokens),
        },
        status_code=status_code,
    )
    response.headers.update(headers or {})
    return response


def _signed_in(request: Request, cookie: str, next_url: str) -> Response:
    response = RedirectResponse(next_url, status_code=303)
    gate_of(request).set_cookie(response, request, cookie)
    return response


def _wait_message(seconds: int, *, busy: bool) -> str:
    if busy:
        return f"Sign-in is busy right now. Try again in {seconds} second{'s' if seconds != 1 else ''}."
    at = (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%H:%M:%S UTC")
    return f"Too many failed sign-ins. Try again in {seconds} second{'s' if seconds != 1 else ''} (at {at})."


async def _audit_sign_in(request: Request, attempt: SignInAttempt, *, method: str, user: str | None) -> None:
    gate, runtime = gate_of(request), runtime_of(request)
    if attempt.outcome == "ok":
        principal = gate.from_cookie(attempt.cookie)
        name = principal.name if principal is not None else "unknown"
        await audit.record(runtime, audit.actor_of(request, name), SIGN_IN, {"method": method}, {})
        return
    known = user is not None and gate.users.lookup(user) is not None
    name = user if known and user is not None else ("unknown user" if method == "password" else "unknown token")
    selection = {"method": method, "known_user": known}
    result = {"error": "invalid credentials"}
    await audit.record(runtime, audit.actor_of(request, name), SIGN_IN_FAILED, selection, result, ok=False)


async def _outcome(
    request: Request, attempt: SignInAttempt, *, method: str, next_url: str, error: str, user: str | None = None
) -> Response:
    runtime_of(request).metrics.sign_ins.labels(method, attempt.outcome).inc()
    if attempt.outcome in ("ok", "failed"):
        await _audit_sign_in(request, attempt, method=method, user=user)
    if attempt.outcome == "ok":
        assert attempt.cookie is not None
        return _signed_in(request, attempt.cookie, next_url)
    client = client_address(request)
    if attempt.outcome == "failed":
        log.warning("auth.sign_in_failed", method=method, client=client, **({"user": user[:64]} if user else {}))
        return await _form(request, next_url=next_url, error=error, status_code=401)
    busy = attempt.outcome == "busy"
    seconds = max(1, math.ceil(attempt.retry_after))
    status_code = 503 if busy else 429
    headers = {"Retry-After": str(seconds)}
    message = _wait_message(seconds, busy=busy)
    if not busy:
        log.warning("auth.sign_in_throttled", method=method, client=client, retry_after=seconds)
    if request.headers.get("accept", "").startswith("application/json"):
        code = "service_unavailable" if busy else "too_many_requests"
        body = {"error": code, "detail": message, "retry_after": seconds}
        return JSONResponse(body, status_code=status_code, headers=headers)
    return await _form(request, next_url=next_url, error=message, status_code=status_code, headers=headers)


@router.get("/login")
async def login_page(request: Request, next: str | None = None, token: str | None = None) -> Response:
    next_url = safe_next(next) if next else LANDING
    if token is not None:
        # A sign-in link: sign in, then redirect to a URL without the token (it must not stay in the history).
        attempt = gate_of(request).sign_in_with_token(token, client_address(request))
        return await _outcome(
            request, attempt, method="token", next_url=next_url, error="That sign-in link is not valid."
        )
    return await _form(request, next_url=next_url)


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
    next_url = safe_next(next) if next else LANDING
    if not gate.login_form_ok(request, login_token):
        return await _form(request, next_url=next_url, error="The form expired; please try again.", status_code=403)
    error = "Those credentials are not valid."
    client = client_address(request)
    if token:
        attempt = gate.sign_in_with_token(token.strip(), client)
        return await _outcome(request, attempt, method="token", next_url=next_url, error=error)
    if username and password is not None:
        name = username.strip()
        attempt = await gate.sign_in_with_password(name, password, client)
        return await _outcome(request, attempt, method="password", next_url=next_url, error=error, user=name)
    return await _form(request, next_url=next_url, error=error, status_code=401)


@router.post("/logout")
async def logout(request: Request, principal: CheckedPost) -> Response:
    gate = gate_of(request)
    result: dict[str, str] = {}
    try:
        await gate.sign_out(principal)
    except StoreUnavailable as exc:
        # This process refuses the session anyway, and the browser drops the cookie; other processes may not.
        log.error("auth.sign_out_not_recorded", error=str(exc))
        result = {"error": f"the revocation was not stored: {exc}"}
    actor = audit.actor_of(request, principal.name)
    await audit.record(runtime_of(request), actor, SIGN_OUT, {"method": principal.method}, result, ok=not result)
    response = RedirectResponse("/login", status_code=303)
    gate.clear_cookie(response, request)
    return response
