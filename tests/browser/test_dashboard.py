"""The dashboard in a real headless Chromium: sign-in, live releases, filters in the URL, inert notes, sign-out."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot, sign_in
from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until

pytestmark = pytest.mark.browser

EVIL_NOTES = (
    "## Fixes\n\n<script>window.pwned = 'script'; alert('script')</script>\n\n"
    "[click me](javascript:alert('link'))\n\n<a href=\"javascript:alert('a')\" id=\"js-link\">raw link</a>\n\n"
    "<img src=x onerror=\"window.pwned = 'img'; alert('img')\">\n\n"
    "<iframe src=\"javascript:alert('frame')\"></iframe>\n\n"
    '<p onmouseover="alert(\'hover\')" id="hover-me">hover me</p>\n\n'
    "<svg><script>alert('svg')</script></svg>\n"
)


def _post(server: ThreadedServer, payload: dict[str, object] | bytes, *, delivery_id: str) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert post_webhook(client, signed(payload, delivery_id=delivery_id)).status_code == 202


def _seed(server: ThreadedServer) -> None:
    _post(server, release(release_id=1, tag="v1.0.0", repository_name="octo-org/alpha"), delivery_id="a1")
    _post(
        server,
        release(
            release_id=2,
            tag="v2.0.0-rc.1",
            repository_name="octo-org/beta",
            prerelease=True,
            body="Adds the **zeppelin** mode.\n\n| flag | meaning |\n|---|---|\n| `-z` | zeppelin |\n",
            author="hubot",
            published_at="2024-05-20T10:00:00Z",
        ),
        delivery_id="b1",
    )
    _post(
        server,
        release(release_id=3, tag="v0.9.0", repository_name="octo-org/alpha", action="deleted"),
        delivery_id="a2",
    )
    api = httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": "Bearer test-api-token-0123456789"})
    with api:
        wait_until(lambda: len(api.get("/api/releases").json()["items"]) == 3)


def test_a_release_sent_to_the_webhook_appears_live_within_two_seconds(page: Page, server: ThreadedServer) -> None:
    sign_in(page, server)
    expect(page.get_by_role("heading", name="Releases")).to_be_visible()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    screenshot(page, "releases-empty")
    _post(server, release(release_id=42, tag="v4.2.0", repository_name="octo-org/live"), delivery_id="live-1")
    started = time.monotonic()
    expect(page.locator("#releases").get_by_role("link", name="v4.2.0", exact=True)).to_be_visible(timeout=2000)
    assert time.monotonic() - started < 2.0
    expect(page.locator('[data-key="release-42"]')).to_have_class(re.compile("is-new"))


def test_filters_and_search_narrow_the_list_and_survive_a_reload(page: Page, server: ThreadedServer) -> None:
    _seed(server)
    sign_in(page, server)
    expect(page.locator("#releases > li")).to_have_count(3)
    screenshot(page, "releases")
    page.get_by_label("Search").fill("zeppelin")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"q=zeppelin"))
    expect(page.locator("#releases > li")).to_have_count(1)
    page.reload()
    expect(page.locator("#releases > li")).to_have_count(1)
    expect(page.get_by_label("Search")).to_have_value("zeppelin")
    # Repository typeahead, then a state filter; all in the URL.
    page.goto(server.url + "/")
    page.get_by_label("Repository").press_sequentially("octo-org/al")
    expect(page.locator("#repo-options option[value='octo-org/alpha']")).to_have_count(1)
    page.get_by_label("Repository").fill("octo-org/alpha")
    page.get_by_label("State").select_option("deleted")
    page.get_by_label("Repository").press("Enter")
    page.wait_for_url(re.compile(r"repo=octo-org%2Falpha.*state=deleted"))
    expect(page.locator("#releases > li")).to_have_count(1)
    expect(page.locator("#releases")).to_contain_text("v0.9.0")
    expect(page.locator("#releases")).to_contain_text("deleted")
    url = page.url
    page.goto(server.url + "/")
    page.goto(url)
    expect(page.locator("#releases > li")).to_have_count(1)
    expect(page.get_by_label("State")).to_have_value("deleted")
    page.goto(server.url + "/?pre=yes")
    expect(page.locator("#releases > li")).to_have_count(1)
    expect(page.locator("#releases")).to_contain_text("pre-release")


def test_release_notes_with_script_injection_render_inert(page: Page, server: ThreadedServer) -> None:
    _post(server, release(release_id=66, tag="v6.6.6", body=EVIL_NOTES), delivery_id="evil-1")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, server)
    page.get_by_role("link", name="v6.6.6", exact=True).click()
    page.wait_for_url(f"{server.url}/releases/66")
    expect(page.get_by_role("heading", name="Fixes")).to_be_visible()
    page.locator("#hover-me, .notes p:has-text('hover me')").first.hover()
    raw_link = page.locator(".notes a:has-text('raw link')")
    if raw_link.count():
        assert (raw_link.get_attribute("href") or "").startswith(("http", "/", "#")) or not raw_link.get_attribute(
            "href"
        )
    assert page.locator(".notes script, .notes iframe, .notes img, .notes [onerror], .notes [onmouseover]").count() == 0
    assert page.evaluate("window.pwned") is None
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    expect(page.get_by_text("evil-1").first).to_be_visible()
    page.get_by_text("Delivery evil-1").click()  # the raw payload, folded by default
    expect(page.locator("details.payload pre")).to_contain_text('"tag_name": "v6.6.6"')
    assert dialogs == []
    screenshot(page, "release-detail")


def test_events_repository_and_delivery_pages(page: Page, server: ThreadedServer) -> None:
    _seed(server)
    _post(server, orjson.dumps({"action": "published", "release": {"tag_name": "broken"}}), delivery_id="bad-1")
    sign_in(page, server)
    page.get_by_role("link", name="octo-org/beta").first.click()
    expect(page.get_by_role("heading", name="octo-org/beta")).to_be_visible()
    expect(page.locator("figure.chart svg rect.bar")).to_have_count(26)
    screenshot(page, "repository")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    failed = page.locator("tr.is-failed")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("PayloadMismatch")
    screenshot(page, "events")
    failed.get_by_role("link", name=re.compile("Headers")).click()
    expect(page.get_by_role("heading", name="Headers")).to_be_visible()
    expect(page.locator("pre.payload")).to_contain_text('"tag_name": "broken"')
    screenshot(page, "delivery")
    page.get_by_role("button", name="Reprocess this delivery").click()
    # "Queued for reprocessing." until the worker is done (it may be done first), then how it went (live).
    expect(page.locator("p.flash")).to_have_text(re.compile(r"Queued for reprocessing\.|Reprocessed: failed again"))
    expect(page.locator("p.flash")).to_have_text(re.compile(r"Reprocessed: failed again: PayloadMismatch"))


def test_keyboard_reaches_the_filters_and_the_list(page: Page, server: ThreadedServer) -> None:
    _seed(server)
    sign_in(page, server)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Search")).to_be_focused()


def test_sign_out_ends_access(page: Page, server: ThreadedServer) -> None:
    page.goto(server.url + "/events")
    page.wait_for_url(re.compile(r"/login\?next=/events"))
    screenshot(page, "login")
    page.get_by_label("API token").fill("test-api-token-0123456789")
    page.get_by_role("button", name="Sign in with token").click()
    page.wait_for_url(f"{server.url}/events")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{server.url}/login")
    page.goto(server.url + "/")
    page.wait_for_url(re.compile(r"/login\?next=/"))
    response = page.request.get(server.url + "/api/releases")
    assert response.status == 401
