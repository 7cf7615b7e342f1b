"""The Rejected page in Chromium at desktop (1440 px) and phone (390 px) widths: the wrong-secret banner naming the
hook, the buckets newest first with an aggregated row, the reason filter; screenshots build/screenshots/rejected-*."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Page, expect

from ghingest.app import sender
from ghingest.app.runtime import Runtime
from ghingest.core.rejections import MAX_KEYS_PER_MINUTE
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import SECRET, TOKEN, ThreadedServer, release, wait_until

WIDTHS = {"desktop": 1440, "phone": 390}
# What reaches past the window's right edge, outside a table's own scrolling box.
OUTSIDE_THE_WIDTH = """[...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap"))
  .map(e => e.tagName + "." + e.className).slice(0, 8)"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    from ghingest.app.settings import load_settings

    tmp = tmp_path_factory.mktemp("rejected-page")
    settings = load_settings(
        database_url=f"sqlite:///{tmp / 'ghingest.db'}", data_dir=tmp / "data", webhook_secrets=SECRET, api_tokens=TOKEN
    )
    with ThreadedServer(Runtime.build(settings)) as running:
        body = orjson.dumps(release())
        with httpx.Client(base_url=running.url, timeout=10) as client:
            for _ in range(3):  # a hook whose secret is not ghingest's
                wrong = sender.hookshot_request(body, event="release", secret="not-the-secret", hook_id=12345)
                assert client.post("/webhooks/github", content=wrong.body, headers=wrong.headers).status_code == 401
            plain = sender.hookshot_request(body, event="release", secret=SECRET)
            headers = {k: v for k, v in plain.headers.items() if k != "X-GitHub-Event"}
            assert client.post("/webhooks/github", content=plain.body, headers=headers).status_code == 400
            for n in range(MAX_KEYS_PER_MINUTE + 5):  # more distinct hooks than the minute keeps one by one
                flood = sender.hookshot_request(body, event="push", secret="scanner", hook_id=1000 + n)
                headers = {**flood.headers, "Content-Type": "text/plain"}
                assert client.post("/webhooks/github", content=flood.body, headers=headers).status_code == 415
        with httpx.Client(base_url=running.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:

            def recorded() -> bool:
                items = api.get("/api/rejections", params={"limit": 200}).json()["items"]
                return sum(b["count"] for b in items) == 3 + 1 + MAX_KEYS_PER_MINUTE + 5

            wait_until(recorded)
        yield running


@pytest.mark.parametrize("width", list(WIDTHS.values()), ids=list(WIDTHS))
def test_the_rejected_page_makes_a_wrong_secret_obvious(page: Page, server: ThreadedServer, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, server)
    page.get_by_role("link", name="Rejected").click()
    page.wait_for_url(f"{server.url}/rejected")
    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("signed with a secret ghingest does not have")
    expect(banner).to_contain_text("3 requests from hook 12345")
    expect(banner).to_contain_text("GHINGEST_WEBHOOK_SECRETS")
    rows = page.locator("table.rejections tbody tr")
    expect(rows.first).to_be_visible()
    expect(page.locator("tr.is-aggregated")).to_contain_text("aggregated since")
    expect(page.get_by_role("status").filter(has_text="aggregated since")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"rejected-{width}.png"), full_page=True)
    wide = page.evaluate(OUTSIDE_THE_WIDTH)
    assert wide == []  # nothing but a table scrolls sideways

    page.get_by_label("Reason", exact=True).select_option("wrong_secret")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/rejected?reason=wrong_secret*")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("wrong secret")
    expect(rows.first).to_contain_text("12345")
    expect(rows.first).to_contain_text("3")
    if width == WIDTHS["desktop"]:
        page.screenshot(path=str(SCREENSHOTS / "rejected-filtered-1440.png"), full_page=True)
