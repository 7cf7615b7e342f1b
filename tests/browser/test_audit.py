"""Actions with feedback and the audit log, in Debian's Chromium at desktop (1440 px) and phone (390 px) widths:
dead letters (select all, the action bar on top, "select at least one", retry all only after a confirmation page),
a delivery that failed processing (never "no route matched"; reprocessing says how it went), and the audit page
showing who did what and what came of it. Screenshots: build/screenshots/dead-letters-*.png, audit-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Page, expect

from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, routes_toml

pytestmark = pytest.mark.browser

WIDTHS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """One server for the module, forwarding releases to a destination that refuses them all (dead letters)."""
    folder = tmp_path_factory.mktemp("audit-browser")
    with Destination(lambda _r: Answer(status=400, body=b"no such repository")) as refusing:
        routes = folder / "routes.toml"
        routes.write_text(
            routes_toml(
                {"ci": {"url": refusing.url, "secret": "destination-secret"}},
                [{"name": "releases-to-ci", "events": ["release"], "destinations": ["ci"]}],
            )
        )
        settings = load_settings(
            database_url=f"sqlite:///{folder / 'g.db'}",
            data_dir=folder / "data",
            webhook_secrets=SECRET,
            api_tokens=TOKEN,
            routes_file=routes,
            worker_poll_interval=0.05,
            forward_poll_interval=0.05,
        )
        with ThreadedServer(Runtime.build(settings)) as running:
            yield running


@pytest.fixture(params=sorted(WIDTHS))
def width(request: pytest.FixtureRequest, page: Page) -> str:
    page.set_viewport_size(WIDTHS[request.param])
    return str(request.param)


def _shot(page: Page, name: str, width: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)


def _dead_letters(server: ThreadedServer, prefix: str, count: int) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as plain:
        for n in range(count):
            payload = release(release_id=hash((prefix, n)) % 1_000_000 + 10, tag=f"v{n}")
            assert post_webhook(plain, signed(payload, delivery_id=f"{prefix}-{n}")).status_code == 202
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        wait_until(
            lambda: (
                {f"{prefix}-{n}" for n in range(count)}
                <= {f["delivery_id"] for f in api.get("/api/dead-letters", params={"limit": 500}).json()["items"]}
            )
        )


def test_dead_letters_select_all_at_least_one_and_retry_all_after_a_confirmation(
    page: Page, server: ThreadedServer, width: str
) -> None:
    _dead_letters(server, f"dl-{width}", 3)
    sign_in(page, server)
    page.goto(f"{server.url}/forwarding/dead-letters")
    rows = page.locator("table.dead-letters tbody tr")
    expect(rows.first).to_be_visible()
    total = rows.count()
    assert total >= 3
    bars = page.locator(".action-bar")
    expect(bars).to_have_count(2)
    # The bar above the list comes before the table.
    top = bars.first.bounding_box()
    table = page.locator("table.dead-letters").bounding_box()
    assert top is not None
    assert table is not None
    assert top["y"] < table["y"]
    _shot(page, "dead-letters", width)

    # Nothing selected: say what to do, not "0 forwards queued".
    bars.first.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("Select at least one dead letter"))
    expect(page.get_by_text(re.compile(r"\b0 forwards"))).to_have_count(0)
    _shot(page, "dead-letters-none-selected", width)

    # Select all ticks every row; one cleared leaves it half-ticked.
    select_all = page.get_by_label("Select all dead letters on this page")
    select_all.check()
    boxes = page.locator('input[name="job_id"]')
    assert all(boxes.nth(n).is_checked() for n in range(boxes.count()))
    boxes.first.uncheck()
    assert page.evaluate("document.getElementById('select-all').indeterminate") is True
    boxes.first.check()
    expect(select_all).to_be_checked()
    bars.first.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("status").filter(has_text="again")).to_have_text(f"Queued {total} forwards again.")
    _shot(page, "dead-letters-retried", width)

    # Retry all asks first, on a page of its own (no script needed); Cancel goes back, changing nothing.
    _dead_letters(server, f"dl-{width}-more", 1)
    page.goto(f"{server.url}/forwarding/dead-letters")
    page.locator(".action-bar").last.get_by_role("button", name=re.compile("Retry all dead letters")).click()
    expect(page.get_by_role("heading", name="Retry all dead letters?")).to_be_visible()
    confirm = page.get_by_role("button", name=re.compile(r"Retry \d+ dead letters?"))
    expect(confirm).to_be_visible()
    count = int(re.findall(r"\d+", confirm.inner_text())[0])
    assert count >= 1
    _shot(page, "dead-letters-confirm", width)
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    page.locator(".action-bar").first.get_by_role("button", name=re.compile("Retry all dead letters")).click()
    page.get_by_role("button", name=re.compile(r"Retry \d+ dead letters?")).click()
    expect(page.get_by_role("status").filter(has_text="again")).to_have_text(
        re.compile(rf"Queued {count} forwards? again\.")
    )


def test_a_failed_delivery_says_so_and_reprocessing_says_how_it_went(
    page: Page, server: ThreadedServer, width: str
) -> None:
    delivery_id = f"broken-{width}"
    with httpx.Client(base_url=server.url, timeout=10) as plain:
        broken = orjson.dumps({"action": "published", "release": {"tag_name": "no id"}})
        assert post_webhook(plain, signed(broken, delivery_id=delivery_id)).status_code == 202
    sign_in(page, server)
    page.goto(f"{server.url}/deliveries/{delivery_id}")
    expect(page.locator(".badge-failed").first).to_be_visible()
    forwards = page.locator("section", has=page.get_by_role("heading", name="Forwards"))
    expect(forwards).to_contain_text("processing failed, so no forwards were made")
    expect(forwards).not_to_contain_text("no route matched")
    page.get_by_role("button", name="Reprocess this delivery").click()
    # "Queued for reprocessing." (or, if the worker was quicker, the outcome at once); the page's live refresh then
    # says how it went, without a reload.
    expect(page.locator("p.flash")).to_have_text(re.compile(r"Queued for reprocessing\.|Reprocessed"))
    outcome = page.get_by_role("alert").filter(has_text="Reprocessed")
    expect(outcome).to_have_text(re.compile(r"Reprocessed: failed again: PayloadMismatch"))
    _shot(page, "audit-delivery-reprocessed", width)


def test_the_audit_page_shows_who_did_what_and_what_came_of_it(page: Page, server: ThreadedServer, width: str) -> None:
    _dead_letters(server, f"au-{width}", 1)
    sign_in(page, server)
    page.goto(f"{server.url}/forwarding/dead-letters")
    page.get_by_label(re.compile(f"Select au-{width}-0 to ci")).check()
    page.locator(".action-bar").first.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_role("status").filter(has_text="again")).to_have_text("Queued 1 forward again.")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    newest = page.locator("table.audit tbody tr").first
    expect(newest.locator('[data-label="Who"]')).to_have_text("token 1")
    expect(newest.locator('[data-label="Action"]')).to_have_text("retry")
    expect(newest.locator('[data-label="Selection"]')).to_contain_text("selected jobs")
    expect(newest.locator('[data-label="Result"]')).to_contain_text("queued")
    expect(newest.locator('[data-label="Result"]')).to_contain_text("1")
    expect(newest.locator('[data-label="Outcome"]')).to_have_text("ok")
    expect(newest.locator('[data-label="From"]')).to_have_text("127.0.0.1")
    _shot(page, "audit", width)
    # Filters: the sign-ins only, then back to every entry; the page's address keeps them.
    page.get_by_label("Action").fill("sign_in")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"action=sign_in"))
    actions = page.locator('table.audit tbody [data-label="Action"]')
    expect(actions.first).to_have_text("sign in")
    assert set(actions.all_inner_texts()) == {"sign in"}
    _shot(page, "audit-filtered", width)
