"""Forwards are live: a delivery's forwards section, the dead-letter list and the destinations follow the change
feed's `forward` changes in place; stopping the server makes every open page say Offline at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, routes_toml

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": 1440, "phone": 390}
Answers = dict[str, int]  # delivery id -> the destination's status for it (503 until the test says otherwise)


@pytest.fixture
def answers() -> Iterator[tuple[Destination, Answers]]:
    state: Answers = {}
    with Destination(lambda r: Answer(status=state.get(r.headers.get("x-github-delivery", ""), 503))) as dest:
        yield dest, state


@pytest.fixture
def forwarding_server(
    make_settings: Callable[..., Settings], tmp_path: Path, answers: tuple[Destination, Answers]
) -> Iterator[ThreadedServer]:
    dest, _ = answers
    routes = tmp_path / "routes.toml"
    retry_every_second = {"base_delay": 1.0, "max_delay": 1.0, "jitter": 0}
    routes.write_text(
        routes_toml(
            {"ci": {"url": dest.url, "secret": "destination-secret", "retry": retry_every_second}},
            [{"name": "releases-to-ci", "events": ["release"], "destinations": ["ci"]}],
        )
    )
    settings = make_settings(routes_file=routes, forward_poll_interval=0.05)
    with ThreadedServer(Runtime.build(settings)) as server:
        yield server


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _live(page: Page) -> None:
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_forwards_and_dead_letters_follow_the_feed_and_a_stop_shows_offline_at_once(
    browser: Browser, forwarding_server: ThreadedServer, answers: tuple[Destination, Answers], width: int
) -> None:
    server = forwarding_server
    dest, state = answers
    size = next(name for name, w in WIDTHS.items() if w == width)
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(10000)
    try:
        delivery = context.new_page()
        sign_in(delivery, server)
        dead_letters = context.new_page()
        dead_letters.goto(f"{server.url}/forwarding/dead-letters")
        expect(dead_letters.get_by_text("No dead letter.")).to_be_visible()
        destinations = context.new_page()
        destinations.goto(f"{server.url}/forwarding")
        for tab in (dead_letters, destinations):
            _live(tab)

        with httpx.Client(base_url=server.url, timeout=10) as client:
            for n, delivery_id in enumerate(("live-ok", "live-dead")):
                request = signed(release(release_id=900 + n, tag=f"v9.0.{n}"), delivery_id=delivery_id)
                assert post_webhook(client, request).status_code == 202
        wait_until(lambda: {"live-ok", "live-dead"} <= {r.headers.get("x-github-delivery") for r in dest.received})
        delivery.goto(f"{server.url}/deliveries/live-ok")
        forwards = delivery.locator("#forwards")
        expect(forwards.locator(".forward .badge").first).to_have_text("retry")
        _live(delivery)
        delivery.evaluate("window.stayed = true")

        state["live-ok"], state["live-dead"] = 200, 400  # the next attempts: delivered, dead
        expect(forwards.locator(".forward .badge").first).to_have_text("delivered")
        expect(forwards.locator("table.attempts tbody tr").last).to_contain_text("200")
        assert delivery.evaluate("window.stayed") is True, "the page was reloaded, not updated in place"
        expect(dead_letters.locator("table.dead-letters")).to_contain_text("live-dead")
        expect(dead_letters.locator("table.dead-letters")).not_to_contain_text("live-ok")
        expect(destinations.locator("[data-live-region]")).to_contain_text("HTTP 400")
        _shot(delivery, f"live-delivery-{size}")
        _shot(dead_letters, f"live-dead-letters-{size}")

        stopping = time.monotonic()
        server.server.should_exit = True
        server.thread.join(timeout=5)
        assert not server.thread.is_alive(), "the server waited for the live streams"
        for tab in (delivery, dead_letters, destinations):
            expect(tab.locator("#live-status")).to_have_attribute("data-state", "offline", timeout=1000)
        assert time.monotonic() - stopping < 3.0
        expect(delivery.locator("#live-status")).to_contain_text("Offline")
        _shot(delivery, f"live-offline-{size}")
    finally:
        context.close()


def test_an_older_page_of_dead_letters_claims_no_live_updates(page: Page, server: ThreadedServer) -> None:
    sign_in(page, server)
    page.goto(f"{server.url}/forwarding/dead-letters")
    _live(page)
    page.goto(f"{server.url}/forwarding/dead-letters?before=1")
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(page.locator("#live-status")).to_have_count(0)
