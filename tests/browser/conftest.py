"""Browser tests: Debian's Chromium driven by Playwright, against a real server on 127.0.0.1.

Missing Chromium fails the run when `CI` is set (the setup installs it: scripts/ensure-chromium.sh), and skips
the browser tests otherwise. The browser is told to talk to nothing but the test server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import TOKEN, ThreadedServer

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: run scripts/ensure-chromium.sh (Debian's chromium package)")
        pytest.skip("chromium is missing (install Debian's chromium package to run the browser tests)")
    return path


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    launched = playwright_instance.chromium.launch(executable_path=_chromium(), args=ARGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser, server: ThreadedServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []
    context.on("request", lambda request: None if request.url.startswith(server.url) else outside.append(request.url))
    tab = context.new_page()
    tab.set_default_timeout(5000)
    yield tab
    context.close()
    assert outside == [], f"the page requested something outside the app: {outside}"


def sign_in(page: Page, server: ThreadedServer | Any, *, token: str = TOKEN) -> None:
    page.goto(f"{server.url}/login?next=/")  # without a `next`, an operator lands on the overview
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(f"{server.url}/")


def screenshot(page: Page, name: str) -> None:
    """Save `name`.png (desktop, light), `name`-dark.png and `name`-375.png (a phone, dark) under build/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1280, "height": 900}
    page.emulate_media(color_scheme="light")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(SCREENSHOTS / f"{name}-dark.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    page.screenshot(path=str(SCREENSHOTS / f"{name}-375.png"), full_page=True)
    page.set_viewport_size(size)
    page.emulate_media(color_scheme="light")
