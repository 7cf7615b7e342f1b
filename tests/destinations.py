"""Real HTTP forward destinations for tests: a small ASGI app served by uvicorn in a thread on 127.0.0.1.

Each destination records what it received (headers, exact body, time) and answers as its `behaviour` says, so a
test can make it slow, down (503), refusing (400) or verifying signatures like any GitHub webhook library does.
"""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from ghingest.core import signature
from tests.conftest import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Destination:
    """`behaviour(received) -> Answer` decides each answer; the default accepts everything."""

    def __init__(
        self, behaviour: Callable[[Received], Answer] | None = None, *, secret: str | None = None, port: int = 0
    ) -> None:
        self.behaviour = behaviour or (lambda _r: Answer())
        self.secret = secret
        self.received: list[Received] = []  # every request, in arrival order
        self.accepted: list[Received] = []  # the requests answered 2xx
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-destination", daemon=True)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        received = Received(headers=headers, body=body, at=time.time())
        with self.lock:
            self.received.append(received)
        answer = self.behaviour(received)
        if self.secret is not None:
            try:
                signature.verify(body, signature_256=headers.get("x-hub-signature-256"), secrets=[self.secret.encode()])
            except Exception:
                answer = Answer(status=401, body=b"bad signature")
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if 200 <= answer.status < 300:
            with self.lock:
                self.accepted.append(received)
        out = [(k.encode(), v.encode("latin-1")) for k, v in answer.headers.items()]  # bytes as a server may send
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        await send({"type": "http.response.body", "body": answer.body})

    def delivery_ids(self) -> set[str]:
        with self.lock:
            return {r.headers.get("x-github-delivery", "") for r in self.accepted}

    def __enter__(self) -> Destination:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test destination did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(timeout=10)


def routes_toml(destinations: dict[str, dict[str, Any]], routes: list[dict[str, Any]]) -> str:
    """A route file's text from plain dicts (strings, numbers, lists and one nested `retry` table)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))

    lines: list[str] = []
    for name, fields in destinations.items():
        lines.append("[[destinations]]")
        lines.append(f"name = {value(name)}")
        lines += [f"{k} = {value(v)}" for k, v in fields.items()]
        lines.append("")
    for route in routes:
        lines.append("[[routes]]")
        lines += [f"{k} = {value(v)}" for k, v in route.items()]
        lines.append("")
    return "\n".join(lines)


def readme_routes_example() -> str:
    """The route file example of the README's Forwarding section, as documented."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- section:forwarding -->", 1)[1]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def readme_chat_template() -> str:
    """The template of the README example's chat route."""
    routes = tomllib.loads(readme_routes_example())["routes"]
    template: str = next(route["template"] for route in routes if route["name"] == "published-releases-to-chat")
    return template
