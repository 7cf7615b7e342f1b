"""A stand-in for GitHub's `GET /meta`: a tiny Starlette app served by uvicorn in a thread on 127.0.0.1.

It answers `{"hooks": [...], ...}` with an ETag and `304` to an `If-None-Match` that matches it, at `/meta` and at
`/api/v3/meta` (GitHub Enterprise Server's path). A test changes `hooks`, or makes it fail: `status` (an error
answer whose body must never reach a log), `body` (an answer of its own), `delay` (seconds before answering).
Every request's headers are recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import free_port

GITHUB_HOOKS = ["192.30.252.0/22", "185.199.108.0/22", "140.82.112.0/20", "143.55.64.0/20", "2a0a:a440::/29"]
ERROR_TEXT = "do-not-log-this-answer"  # in every error answer's body


class MetaStub:
    def __init__(self, hooks: Sequence[str] = GITHUB_HOOKS, *, port: int = 0) -> None:
        self.hooks = list(hooks)
        self.status: int | None = None
        self.body: bytes | None = None
        self.delay = 0.0
        self.requests: list[dict[str, str]] = []
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"  # what GHINGEST_GITHUB_API_URL is set to
        app = Starlette(routes=[Route("/meta", self._meta), Route("/api/v3/meta", self._meta)])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-meta", daemon=True)

    def document(self) -> bytes:
        if self.body is not None:
            return self.body
        return orjson.dumps(
            {"verifiable_password_authentication": True, "hooks": self.hooks, "web": ["192.30.252.0/22"]}
        )

    def etag(self) -> str:
        return f'W/"{hashlib.sha256(self.document()).hexdigest()[:32]}"'

    async def _meta(self, request: Request) -> Response:
        self.requests.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            return Response(orjson.dumps({"message": ERROR_TEXT}), status_code=self.status)
        etag = self.etag()
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        return Response(self.document(), media_type="application/json", headers={"etag": etag})

    def start(self) -> MetaStub:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the /meta stub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> MetaStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
