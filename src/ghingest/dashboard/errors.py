"""The dashboard's error pages: every error a browser meets outside `/api/` is an HTML page with a way back.

Which answer an error gets (`wants_page`): the JSON error document `{"error", "detail"}` under `/api/` and for a
client that asks for JSON (`Accept: application/json` without `text/html`); otherwise the HTML page `error.html`
for a dashboard route (`PageRoute`), and for any other path when the client accepts `text/html` (a browser's
navigation: an unknown path, a wrong method, a 500). A client that accepts anything (`*/*`, curl) keeps JSON on
the machine paths (`/webhooks/github`, `/healthz`, ...).

- A page's path value that does not validate (`/releases/abc`, an id past int64) names no page: 404.
- A query or form value that does not validate (`/?cursor=…`, `/forwarding/dead-letters?before=x`): 400.
- `install_error_pages` puts the pages in front of the JSON handlers the application installed before it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ghingest.core.errors import StoreUnavailable
from ghingest.dashboard.security import gate_of
from ghingest.dashboard.templating import renderer_of

API_PREFIX = "/api/"
_PATH_SHOWN = 200  # characters of a path quoted in a message


def error_page(request: Request, title: str, message: str, *, status_code: int) -> Response:
    return renderer_of(request).page(
        request, "error.html", {"title": title, "message": message, "status_code": status_code}, status_code=status_code
    )


def bad_request(request: Request, message: str = "That link is not valid.") -> Response:
    return error_page(request, "Invalid request", message, status_code=400)


def not_found(request: Request, message: str | None = None) -> Response:
    return error_page(request, "Not found", message or f"There is no page at {_path(request)}.", status_code=404)


def wants_page(request: Request) -> bool:
    """Whether an error answers this request with the HTML page (else with the JSON error document)."""
    accept = request.headers.get("accept", "")
    html = "text/html" in accept
    if request.url.path.startswith(API_PREFIX) or ("application/json" in accept and not html):
        return False
    return html or isinstance(request.scope.get("route"), PageRoute)


def _path(request: Request) -> str:
    path = request.url.path
    return path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "…"


class PageRoute(APIRoute):
    """A dashboard route (`APIRouter(route_class=PageRoute)`): a path value that does not validate answers 404, a
    query or form value 400, each with the HTML error page (JSON to a client that asks for it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                if not wants_page(request):
                    raise
                errors = [error for error in exc.errors() if error.get("loc")]
                if any(error["loc"][0] == "path" for error in errors):
                    return not_found(request)
                names = sorted({str(error["loc"][-1]) for error in errors})
                return bad_request(request, f"Not a valid value: {', '.join(names) or 'request'}.")

        return handle


async def _with_principal(request: Request) -> None:
    """The signed-in user, for the navigation of a page no route answered (no route dependency identified them)."""
    if getattr(request.state, "principal", None) is None:
        try:
            request.state.principal = await gate_of(request).identify(request)
        except StoreUnavailable:  # the session's revocation could not be read: the page goes without navigation
            request.state.principal = None


def _message(request: Request, exc: StarletteHTTPException) -> tuple[str, str]:
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    if exc.status_code == 404:
        return "Not found", f"There is no page at {_path(request)}."
    if exc.status_code == 405:
        return "Method not allowed", f"{_path(request)} does not answer {request.method} requests."
    detail = str(exc.detail)
    return phrase, (detail[:1].upper() + detail[1:]) if detail and detail != phrase else f"{phrase}."


def install_error_pages(app: FastAPI) -> None:
    """Answer a browser's errors with `error.html`: an `HTTPException` (an unknown path, a wrong method, a refusal by
    a dependency) and an unhandled exception (500; the server still logs it). Everything else keeps the handler
    the application installed before this call (the JSON error document)."""
    json_error = app.exception_handlers[StarletteHTTPException]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not wants_page(request):
            answer = json_error(request, exc)
            return answer if isinstance(answer, Response) else await answer
        if exc.status_code in (404, 405):
            await _with_principal(request)
        title, message = _message(request, exc)
        response = error_page(request, title, message, status_code=exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def server_error(request: Request, _exc: Exception) -> Response:
        if not wants_page(request):
            return JSONResponse({"error": "internal_server_error", "detail": "internal error"}, status_code=500)
        message = "The dashboard could not answer this request (the error is in the server's log). Try again."
        return error_page(request, "Something went wrong", message, status_code=500)
