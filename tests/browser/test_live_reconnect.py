"""The live indicator goes offline when the server stops, and the page reconnects and catches up by itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, expect

from ghingest.app.asgi import Application
from ghingest.app.http_limits import uvicorn_config
from ghingest.app.listener import Listener
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from tests.browser.conftest import sign_in
from tests.conftest import free_port, post_webhook, release, signed

pytestmark = pytest.mark.browser


class RestartableServer:
    """Like `ThreadedServer`, but stops quickly with streams open and starts again on the same port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Listener | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        runtime = Runtime.build(self.settings)
        runtime.backend.resources.upgrade()
        config = uvicorn_config(
            Application(runtime),
            runtime.settings,
            metrics=runtime.metrics,
            host="127.0.0.1",
            port=self.port,
            timeout_graceful_shutdown=1,
        )
        self.server = Listener(config, runtime=runtime)
        self.thread = threading.Thread(target=self.server.run, name="restartable-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            assert self.thread.is_alive(), "server thread died"
            time.sleep(0.01)

    def stop(self) -> None:
        assert self.server is not None
        assert self.thread is not None
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


def test_page_reconnects_after_a_restart_and_shows_what_it_missed(
    browser: Browser, make_settings: Callable[..., Settings]
) -> None:
    server = RestartableServer(make_settings())
    server.start()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10000)
    try:
        sign_in(page, server)
        status = page.locator("#live-status")
        expect(status).to_have_attribute("data-state", "live")
        server.stop()
        expect(status).to_have_attribute("data-state", "offline")
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            request = signed(release(release_id=77, tag="v7.7.7"), delivery_id="after-restart")
            assert post_webhook(client, request).status_code == 202
        expect(status).to_have_attribute("data-state", "live")
        expect(page.locator("#releases").get_by_role("link", name="v7.7.7", exact=True)).to_be_visible()
    finally:
        context.close()
        server.stop()
