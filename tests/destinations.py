"""Real HTTP forward destinations for tests: a small ASGI app served by uvicorn in a thread on 127.0.0.1.

Each destination records what it received (headers, exact body, time) and answers as its `behaviour` says, so a
test can make it slow, down (503), refusing (400) or verifying signatures like any GitHub webhook library does; over
HTTPS with a throwaway CA's certificate (`certificates`, by trustme). `Proxy` is an HTTP proxy (CONNECT tunnels and
absolute-form requests) that counts what went through it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
        self,
        behaviour: Callable[[Received], Answer] | None = None,
        *,
        secret: str | None = None,
        port: int = 0,
        tls: Certificates | None = None,
    ) -> None:
        self.behaviour = behaviour or (lambda _r: Answer())
        self.secret = secret
        self.received: list[Received] = []  # every request, in arrival order
        self.accepted: list[Received] = []  # the requests answered 2xx
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hook"
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            interface="asgi3",
            ssl_certfile=str(tls.server_pem) if tls else None,
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


# --- TLS and proxies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA (`ca_bundle`: its PEM file) and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_bundle: Path
    server_pem: Path  # the private key and the certificate chain
    ca: Any  # trustme.CA
    leaf: Any  # trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)
        return context


def certificates(folder: Path) -> Certificates:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    ca_bundle, server_pem = folder / "ca.pem", folder / "server.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    return Certificates(ca_bundle=ca_bundle, server_pem=server_pem, ca=ca, leaf=leaf)


class Proxy:
    """An HTTP proxy on 127.0.0.1, on an event loop in a thread of its own: `CONNECT host:port` opens a tunnel (counted
    in `tunnels`), any other request is absolute-form and relayed to its origin (counted in `relayed`). `heads` keeps
    the first request head of each client connection. `answer` (a status) refuses every request with it."""

    def __init__(self, *, answer: int | None = None) -> None:
        self.answer = answer
        self.tunnels = 0
        self.relayed = 0
        self.heads: list[bytes] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-proxy", daemon=True)
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Proxy:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self.loop
        ).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            with self.lock:
                self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            if self.answer is not None:
                writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % self.answer)
                await writer.drain()
                return
            if method == b"CONNECT":
                host, port = target.decode().rsplit(":", 1)
                upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
                with self.lock:
                    self.tunnels += 1
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                origin = urlsplit(target.decode())
                upstream_reader, upstream_writer = await asyncio.open_connection(origin.hostname, origin.port or 80)
                with self.lock:
                    self.relayed += 1
                upstream_writer.write(head)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
