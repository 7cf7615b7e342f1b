"""In front of the FastAPI application (every route but the webhook, which is dispatched before it): no request body
is read before it is known to be small, and no `/api` write's body before its sender is authenticated.

- A body declared (`Content-Length`) over `max_body_bytes` is refused at once with 413, unread; a body streamed
  without a length (chunked) is read up to the cap and refused with 413 as soon as it crosses it, never buffered
  beyond the cap. Under the cap, the body is read here and handed to the application as one message.
- A request with an unsafe method under `/api/` is authenticated first, by the read API's own dependency
  (`ghingest.app.auth.require_reader`: a bearer token, or a dashboard session with its CSRF token); a refusal (401,
  403) is answered before a byte of the body is read. The route's own dependencies still run afterwards.

Every refusal is JSON `{"error", "detail"}` and closes the connection (`Connection: close`), so that an unread body
is not read after it. Requests without a body (GET, the live stream) pass straight through.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ghingest.app.auth import SAFE_METHODS, require_reader
from ghingest.app.metrics import Metrics
from ghingest.core.int64 import parse_int64

Scope = dict[str, Any]


def error_code(status: int) -> str:
    """The `error` of a JSON error answer for an HTTP status: its reason phrase in snake case, but
    `invalid_request` for a 400 (the API's one code for a request it refuses, besides `invalid_cursor`)."""
    if status == 400:
        return "invalid_request"
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


class RequestGuard:
    def __init__(self, app: Any, *, max_body_bytes: int, metrics: Metrics | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._too_large_count = None if metrics is None else metrics.http_refusals.labels("body_too_large")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        streamed = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                streamed = True
        declared = 0
        if length is not None and not streamed:
            try:
                declared = parse_int64(length.decode("latin-1"), minimum=0)
            except ValueError:
                streamed = True  # the parser lets no such value through; if it ever does, the body is counted
        has_body = streamed or declared > 0

        if scope["method"] not in SAFE_METHODS and scope["path"].startswith("/api/"):
            try:
                await require_reader(Request(scope))
            except HTTPException as exc:
                await _refuse(send, exc.status_code, error_code(exc.status_code), str(exc.detail), exc.headers)
                return
        if not has_body:
            await self.app(scope, receive, send)
            return
        if declared > self.max_body_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if delivered:
                return await receive()  # the end of the connection, for streaming responses
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        if self._too_large_count is not None:
            self._too_large_count.inc()
        await _refuse(send, 413, "payload_too_large", f"the request body exceeds {self.max_body_bytes} bytes")


async def _refuse(send: Any, status: int, code: str, detail: str, extra: Mapping[str, str] | None = None) -> None:
    body = orjson.dumps({"error": code, "detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (extra or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
