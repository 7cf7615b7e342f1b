"""The overview in Chromium, at desktop and phone widths: the stat row with its links, the hourly chart, a stat
that follows a new delivery live, and operators landing on it after sign-in (build/screenshots/overview-*.png)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import SCREENSHOTS
from tests.conftest import TOKEN, ThreadedServer
from tests.event_log_support import forwarded_server, post, push

pytestmark = pytest.mark.browser
server = forwarded_server  # the `page` fixture's server: one for the module
WIDTHS = {"desktop": 1440, "phone": 390}


def sign_in_to_landing(page: Page, server: ThreadedServer) -> None:
    """Sign in without a `next`: an operator lands on the overview."""
    page.goto(f"{server.url}/login")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(f"{server.url}/overview")


@pytest.mark.parametrize("name", WIDTHS.keys())
def test_stats_link_to_their_lists_and_the_chart_is_drawn(page: Page, server: ThreadedServer, name: str) -> None:
    page.set_viewport_size({"width": WIDTHS[name], "height": 900})
    sign_in_to_landing(page, server)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    received = page.locator('[data-stat="received"]')
    expect(received.locator(".stat-value")).to_have_text(re.compile(r"^[3-9]$"))
    expect(page.locator('[data-stat="failed"] .stat-value')).to_have_text("1")
    expect(page.locator('[data-stat="dead"] .stat-value')).to_have_text("1")
    expect(page.locator('[data-stat="inbox"] .stat-value')).to_have_text("0")
    expect(page.locator('[data-stat="lag"] .stat-value')).to_have_text("none waiting")
    expect(page.locator('[data-stat="forward-queue"] .stat-value')).to_have_text("0")
    expect(page.locator("figure.chart-hourly svg g.hour")).to_have_count(24)
    expect(page.locator("figure.chart-hourly rect.bar-failed")).to_have_count(1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"overview-{name}.png"), full_page=True)
    page.locator('[data-stat="failed"] a').click()
    page.wait_for_url(re.compile(r"/events\?status=failed&since="))
    expect(page.locator("tbody tr")).to_have_count(1)
    page.go_back()
    page.locator('[data-stat="dead"] a').click()
    page.wait_for_url(f"{server.url}/forwarding/dead-letters")


def test_a_stat_follows_a_new_delivery_live(page: Page, server: ThreadedServer) -> None:
    sign_in_to_landing(page, server)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    value = page.locator('[data-stat="received"] .stat-value')
    before = int(value.inner_text())
    post(server, push("carol"), delivery_id=f"live-{before}", event="push")
    expect(value).to_have_text(str(before + 1), timeout=10_000)
    expect(page).to_have_url(f"{server.url}/overview")  # no reload: the region was replaced
