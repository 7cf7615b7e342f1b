"""The forwarding page's destination health and controls in a real headless Chromium, at desktop (1440 px) and
phone (390 px) widths: health badges (healthy, degraded with a recovered error, failing, no recent attempts), pause
→ the paused badge → resume, and a test delivery's answer shown. Screenshots: build/screenshots/destinations-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, Received, routes_toml

pytestmark = pytest.mark.browser

WIDTHS = [pytest.param(1440, id="desktop"), pytest.param(390, id="phone")]
FAST = {"base_delay": 0.05, "max_delay": 0.1, "max_attempts": 5, "max_age": 60.0}


class FailsFirst:
    """Answers 503 to the first request of each delivery, then 200: every forward needs a retry."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, received: Received) -> Answer:
        delivery_id = received.headers.get("x-github-delivery", "")
        if delivery_id in self.seen:
            return Answer()
        self.seen.add(delivery_id)
        return Answer(503, b"warming up")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    folder = tmp_path_factory.mktemp("destinations-browser")
    with (
        Destination() as ci,
        Destination(FailsFirst()) as ops,
        Destination(lambda _r: Answer(400, b"unknown hook")) as chat,
    ):
        routes = folder / "routes.toml"
        destinations = {
            "ci": {"url": ci.url, "secret": "ci-secret"},
            "ops": {"url": ops.url, "secret": "ops-secret", "retry": FAST},
            "chat": {"url": chat.url, "secret": "chat-secret"},
            "archive": {"url": "http://127.0.0.1:9/hook", "secret": "archive-secret"},
        }
        routes.write_text(routes_toml(destinations, [{"name": "r", "destinations": ["ci", "ops", "chat"]}]))
        settings = load_settings(
            database_url=f"sqlite:///{folder / 'ghingest.db'}", data_dir=folder / "data", webhook_secrets=SECRET,
            api_tokens=TOKEN, routes_file=routes, worker_poll_interval=0.05, forward_poll_interval=0.05,
        )  # fmt: skip
        with ThreadedServer(Runtime.build(settings)) as running:
            _seed(running)
            yield running


def _seed(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        for n in range(4):
            request = signed(release(release_id=700 + n, tag=f"v7.{n}.0"), delivery_id=f"seed-{n}")
            assert post_webhook(api, request).status_code == 202

        def settled() -> bool:
            states = {d["name"]: d for d in api.get("/api/destinations").json()}
            return all(states[name]["queued"] == 0 and states[name]["attempts"] >= 4 for name in ("ci", "ops", "chat"))

        wait_until(settled, timeout=20)


def _open(page: Page, server: ThreadedServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server)
    page.goto(f"{server.url}/forwarding")


def _shot(page: Page, name: str, width: int) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(Path(SCREENSHOTS) / f"destinations-{name}-{width}.png"), full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_each_destination_shows_its_health(page: Page, server: ThreadedServer, width: int) -> None:
    _open(page, server, width)
    expect(page.get_by_role("heading", name="Destinations")).to_be_visible()
    health = {name: page.locator(f'tr[data-key="destination-{name}"] td[data-label="Health"]')
              for name in ("ci", "ops", "chat", "archive")}  # fmt: skip
    expect(health["ci"].locator(".badge-health-healthy")).to_have_text("healthy")
    expect(health["ci"]).to_contain_text("success rate 100.0% in the last hour")
    expect(health["ops"].locator(".badge-health-degraded")).to_have_text("degraded")
    expect(health["ops"]).to_contain_text("success rate 50.0% in the last hour")
    expect(page.locator('tr[data-key="destination-ops"] td[data-label="Last error"] .badge-recovered')).to_have_text(
        "recovered"
    )
    expect(health["chat"].locator(".badge-health-failing")).to_have_text("failing")
    expect(page.locator('tr[data-key="destination-chat"] td[data-label="Last hour"]')).to_contain_text(
        "4 dead-lettered"
    )
    expect(health["archive"].locator(".badge-health-idle")).to_have_text("no recent attempts")
    expect(page.locator('tr[data-key="destination-ci"] td[data-label="Last hour"]')).to_contain_text("100.0 % of 4")
    expect(page.locator('tr[data-key="destination-ci"] td[data-label="Last hour"]')).to_contain_text("p95")
    # Every cell of the table names its column (phones show the rows as cards).
    cells = page.locator("table.destinations.cards tbody td")
    assert cells.count() == page.locator("table.destinations.cards tbody td[data-label]").count() > 0
    _shot(page, "health", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_pause_shows_the_paused_badge_and_resume_removes_it(page: Page, server: ThreadedServer, width: int) -> None:
    _open(page, server, width)
    page.get_by_role("button", name="Pause ci").click()
    page.wait_for_url("**/forwarding?paused=ci*")
    expect(page.get_by_role("status").filter(has_text="Paused ci")).to_be_visible()
    health = page.locator('tr[data-key="destination-ci"] td[data-label="Health"]')
    expect(health.locator(".badge-paused")).to_have_text("paused")
    expect(health).to_contain_text("by token 1")
    expect(page.get_by_role("button", name="Pause ci")).to_have_count(0)
    _shot(page, "paused", width)

    page.get_by_role("button", name="Resume ci").click()
    page.wait_for_url("**/forwarding?resumed=ci*")
    expect(page.get_by_role("status").filter(has_text="Resumed ci")).to_be_visible()
    expect(health.locator(".badge-paused")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause ci")).to_be_visible()
    _shot(page, "resumed", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_test_delivery_shows_what_the_destination_answered(page: Page, server: ThreadedServer, width: int) -> None:
    _open(page, server, width)
    page.get_by_role("button", name="Send test delivery to ci").click()
    page.wait_for_url("**/forwarding?tested=ci*")
    result = page.locator("#test-result")
    expect(result).to_contain_text("Test delivery to ci: HTTP 200 in")
    expect(result).to_contain_text("“ok”")
    expect(page.locator('tr[data-key="destination-ci"] td[data-label="Last test"]')).to_contain_text("by token 1")
    _shot(page, "test-ok", width)

    page.get_by_role("button", name="Send test delivery to chat").click()
    page.wait_for_url("**/forwarding?tested=chat*")
    expect(result).to_contain_text("Test delivery to chat: HTTP 400 in")
    expect(result).to_have_class("notice notice-error")
    _shot(page, "test-refused", width)
