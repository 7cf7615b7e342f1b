"""The dashboard's error pages, and the route class that answers one when a request's values do not validate.

The read API answers a request FastAPI cannot validate (an id past int64, a number that is no number) with the
JSON document `{"error": "invalid_request", ...}`; a page answers the same 400 as an HTML page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ghingest.dashboard.templating import renderer_of


def error_page(request: Request, title: str, message: str, *, status_code: int) -> Response:
    return renderer_of(request).page(
        request, "error.html", {"title": title, "message": message}, status_code=status_code
    )


def bad_request(request: Request, message: str = "That link is not valid.") -> Response:
    return error_page(request, "Invalid request", message, status_code=400)


class PageRoute(APIRoute):
    """A dashboard route (`APIRouter(route_class=PageRoute)`): invalid path, query or form values answer 400 with
    the HTML error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                names = sorted({str(error["loc"][-1]) for error in exc.errors() if error.get("loc")})
                return bad_request(request, f"Not a valid value: {', '.join(names) or 'request'}.")

        return handle
