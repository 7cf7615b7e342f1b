"""The event log in Chromium, at desktop and phone widths: forward outcomes per destination, the release each row
touched, the failure's kind, and every filter (screenshots: build/screenshots/events-*.png)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import ThreadedServer
from tests.event_log_support import forwarded_server

pytestmark = pytest.mark.browser
server = forwarded_server  # the `page` fixture's server: one for the module
WIDTHS = {"desktop": 1440, "phone": 390}


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"events-{name}.png"), full_page=True)


def row(page: Page, delivery_id: str) -> Locator:
    return page.locator(f'tr[data-key="event-{delivery_id}"]')


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_rows_show_forwards_release_and_failure_kind(page: Page, server: ThreadedServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server)
    page.goto(f"{server.url}/events")
    release_row = row(page, "rel-1")
    expect(release_row.locator('.chip[data-destination="ci"]')).to_have_text("ci ✓ 200")
    expect(release_row.locator('.chip[data-destination="chat"]')).to_have_text("chat ✗ dead")
    link = release_row.get_by_role("link", name="octo-org/alpha v7.0.0")
    expect(link).to_have_attribute("href", "/releases/7")
    bad = row(page, "bad-1")
    expect(bad.locator(".failure-kind")).to_contain_text("Cannot succeed without a code change")
    expect(page.locator("table.events.cards td[data-label='Forwards']").first).to_be_visible()
    shot(page, f"{'desktop' if width > 1000 else 'phone'}")
    link.click()
    page.wait_for_url(f"{server.url}/releases/7")


def test_each_filter(page: Page, server: ThreadedServer) -> None:
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})
    sign_in(page, server)
    page.goto(f"{server.url}/events")
    page.get_by_label("Sender").fill("bob")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, "push-1")).to_be_visible()
    page.goto(f"{server.url}/events")
    page.get_by_label("Forwarded to").fill("chat")
    page.get_by_label("Forward status").select_option("dead")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(row(page, "rel-1")).to_be_visible()
    shot(page, "filtered")
    page.goto(f"{server.url}/events")
    page.get_by_label("Received from (UTC)").fill("2000-01-01T00:00")
    page.get_by_label("Received until (UTC)").fill("2000-01-02T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_text("No event matches these filters.")).to_be_visible()
    page.goto(f"{server.url}/events?since=yesterday")
    expect(page.get_by_role("alert")).to_contain_text("From must be a date and time")
    expect(page.locator("tbody tr")).to_have_count(3)  # the bad value is ignored, and said so
    shot(page, "bad-time")
    page.goto(f"{server.url}/events")
    page.get_by_label("Delivery id").fill("push-1")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{server.url}/deliveries/push-1")  # an exact id: that delivery
    page.goto(f"{server.url}/events?delivery_id=nope")
    expect(page.get_by_role("alert")).to_have_text("No event has that delivery id.")


def test_phone_filters_fit(page: Page, server: ThreadedServer) -> None:
    page.set_viewport_size({"width": WIDTHS["phone"], "height": 800})
    sign_in(page, server)
    page.goto(f"{server.url}/events?forward_status=dead")
    expect(page.locator("tbody tr")).to_have_count(1)
    width = page.evaluate("document.querySelector('form.filters').getBoundingClientRect().right")
    assert width <= WIDTHS["phone"]
    shot(page, "phone-filtered")
