"""Shared fixtures: real SQLite files in temporary folders, a real uvicorn server on 127.0.0.1, real HTTP."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ghingest.app import samples, sender
from ghingest.app.asgi import Application
from ghingest.app.http_limits import uvicorn_config
from ghingest.app.listener import Listener
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings, load_settings

pytest_plugins = ["tests.fake_github.plugin"]  # the `fake_github` fixture, for every test folder

SECRET = "It's a Secret to Everybody"
TOKEN = "test-api-token-0123456789"


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's or CI's GHINGEST_* variables."""
    for name in list(os.environ):
        if name.startswith("GHINGEST_"):
            monkeypatch.delenv(name)


def settings_in(folder: Path, **overrides: Any) -> Settings:
    """The tests' settings: an SQLite file and the data folder in `folder`, the test secret and token, fast polls
    (for a module-scoped server too: `folder` from `tmp_path_factory`)."""
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{folder / 'ghingest.db'}",
        "data_dir": folder / "data",
        "webhook_secrets": SECRET,
        "api_tokens": TOKEN,
        "worker_poll_interval": 0.05,
        "worker_retry_base_delay": 0.05,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    return functools.partial(settings_in, tmp_path)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def sqlite_path(runtime: Runtime) -> Path:
    """The SQLite file a runtime of the embedded profile uses (for tests that look at the file itself)."""
    return Path(runtime.settings.database_url.removeprefix("sqlite:///"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThreadedServer:
    """A real uvicorn server running the application in a thread, on its own event loop, configured as the
    command line configures it (`uvicorn_config`: the HTTP limits of the runtime's settings; `Listener`: live
    streams end when it begins to shut down)."""

    def __init__(self, runtime: Runtime, *, read_side: bool = True, migrate: bool = True) -> None:
        if migrate:
            runtime.backend.resources.upgrade()
        self.runtime = runtime
        self.app = Application(runtime, read_side=read_side)
        self.port = free_port()
        config = uvicorn_config(
            self.app, runtime.settings, metrics=runtime.metrics, host="127.0.0.1", port=self.port, loop="uvloop"
        )
        self.server = Listener(config, runtime=runtime)
        self.thread = threading.Thread(target=self.server.run, name="test-server", daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def server(settings: Settings) -> Iterator[ThreadedServer]:
    with ThreadedServer(Runtime.build(settings)) as running:
        yield running


@pytest.fixture
def api(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def signed(
    payload: dict[str, Any] | bytes,
    *,
    event: str = "release",
    secret: str = SECRET,
    delivery_id: str | None = None,
    form: bool = False,
) -> sender.SignedRequest:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return sender.hookshot_request(body, event=event, secret=secret, delivery_id=delivery_id, form=form)


def post_webhook(client: httpx.Client, request: sender.SignedRequest) -> httpx.Response:
    return client.post("/webhooks/github", content=request.body, headers=request.headers)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def release(**kwargs: Any) -> dict[str, Any]:
    return samples.release_payload(**kwargs)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
