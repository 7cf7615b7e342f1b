"""Layout at 1440 px and 390 px in Debian's Chromium, measured: no page scrolls sideways on a phone (wide tables
become cards), repository names wrap only at separators, the repository page's breadcrumb names it, the state
select is never cut off, a browser's errors are HTML pages (JSON under /api), dates are ISO in the inputs, and a
search hit says why it matched. Screenshots: build/screenshots/layout-*.png."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from ghingest.core.reconcile import HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.security import CurrentUser
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, routes_toml

pytestmark = pytest.mark.browser

DESKTOP, PHONE = 1440, 390
LONG_REPO = "kubernetes-sigs/cluster-api-provider-aws_experimental.mirror-of-the-upstream"
LONG_OWNER = "averylongorganisation/tool"  # the owner alone fits a phone
EVIL = "Before <script>window.pwned = 1</script> the zeppelin <b>bold</b> after."
SEPARATORS = "/-_."
PAGES = [
    "/overview",
    "/",
    "/?q=zeppelin",
    "/events",
    "/rejected",
    "/audit",
    "/forwarding",
    "/forwarding/dead-letters",
    "/releases/7",
    "/deliveries/layout-0",
    "/github",
]


@pytest.fixture(scope="module")
def refusing() -> Iterator[Destination]:
    with Destination(lambda _r: Answer(status=400, body=b"no such repository here")) as dest:
        yield dest


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, refusing: Destination) -> Iterator[ThreadedServer]:
    """One server for the module, with releases of long-named repositories, events and dead letters."""
    root = tmp_path_factory.mktemp("layout")
    routes = root / "routes.toml"
    routes.write_text(
        routes_toml(
            {"ci-with-a-long-destination-name": {"url": refusing.url, "secret": "destination-secret"}},
            [{"name": "releases-to-ci", "events": ["release"], "destinations": ["ci-with-a-long-destination-name"]}],
        )
    )
    settings = load_settings(
        database_url=f"sqlite:///{root / 'ghingest.db'}",
        data_dir=root / "data",
        webhook_secrets=SECRET,
        api_tokens=TOKEN,
        worker_poll_interval=0.05,
        forward_poll_interval=0.05,
        routes_file=routes,
    )
    seeding = Runtime.build(settings, run_worker=False)
    seeding.backend.resources.upgrade()
    with ThreadPoolExecutor(1) as thread:  # this thread runs Playwright's event loop
        thread.submit(asyncio.run, _seed_github(seeding)).result()
    with ThreadedServer(Runtime.build(settings)) as running:
        running.app.api.router.routes.append(PageRoute("/layout-boom", _boom, include_in_schema=False))
        _seed(running)
        yield running


async def _seed_github(runtime: Runtime) -> None:
    """A reconciled hook and a tracked repository (not due for a day: nothing asks GitHub)."""
    await runtime.start()
    try:
        await _save_github(runtime)
    finally:
        await runtime.stop()


async def _save_github(runtime: Runtime) -> None:
    now = time.time()
    hook = f"repo:{LONG_REPO}:123456789"
    await runtime.backend.github.save_scan(
        HookScan(
            hook,
            last_run_at=now - 60,
            last_ok_at=None,
            error="HTTP 502: Bad Gateway",
            newest_seen_at=None,
            deliveries_seen=312,
            requests_made=5,
        )
    )
    tracked = TrackedRepository(key=LONG_REPO.lower(), full_name=LONG_REPO, added_at=now, added_by="cli")
    await runtime.backend.github.add_tracked(
        replace(tracked, last_polled_at=now - 30, last_status=304, next_poll_at=now + 86_400)
    )


async def _boom(_user: CurrentUser) -> None:
    raise RuntimeError("a bug in a page")


def _seed(server: ThreadedServer) -> None:
    sent = [
        release(release_id=7, tag="v7.0.0-rc.1", repository_name=LONG_REPO, body="Adds the Zeppelin mode, at last."),
        release(release_id=8, tag="v8.0.0", repository_name=LONG_OWNER, body=EVIL),
        release(release_id=9, tag="v9.0.0", repository_name="octo-org/plain", body="Nothing to see."),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for n, payload in enumerate(sent):
            assert post_webhook(client, signed(payload, delivery_id=f"layout-{n}")).status_code == 202
        forged = signed(sent[0], delivery_id="layout-forged", secret="not the secret")
        assert post_webhook(client, forged).status_code == 401  # a row on the Rejected page
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
        wait_until(lambda: len(api.get("/api/releases").json()["items"]) == 3)
        wait_until(lambda: len(api.get("/api/dead-letters").json()["items"]) == 3)


@pytest.fixture(scope="module")
def at(browser: Browser, server: ThreadedServer) -> Iterator[Any]:
    """`at(width, locale=...)`: a signed-in tab at that width, one per width and locale for the module (each test
    navigates it afresh). Nothing may be requested outside the app."""
    tabs: dict[tuple[int, str], Page] = {}
    outside: list[str] = []

    def tab(width: int, *, locale: str = "en-US") -> Page:
        if (width, locale) not in tabs:
            context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
            context.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
            tabs[width, locale] = context.new_page()
            tabs[width, locale].set_default_timeout(5000)
            sign_in(tabs[width, locale], server)
        page = tabs[width, locale]
        page.set_viewport_size({"width": width, "height": 900})
        return page

    yield tab
    for page in tabs.values():
        page.context.close()
    assert outside == [], f"the page requested something outside the app: {outside}"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    width = (page.viewport_size or {"width": 0})["width"]
    page.screenshot(path=str(SCREENSHOTS / f"layout-{name}-{width}.png"), full_page=True)


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "releases"


# Lines of each element's text: the characters' vertical positions, read through a Range per character.
LINES_OF = """(selector) => [...document.querySelectorAll(selector)].map((el) => {
  const lines = [];
  let top = null;
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      if (top === null || rect.top > top + rect.height / 2) { lines.push(""); top = rect.top; }
      lines[lines.length - 1] += node.data[i];
    }
  }
  return lines;
})"""

OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth - window.innerWidth,
  wraps: [...document.querySelectorAll('.table-wrap')].map((el) => el.scrollWidth - el.clientWidth),
  cells: [...document.querySelectorAll('table.cards td')].map((td) => td.scrollHeight - td.clientHeight),
})"""


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_no_page_scrolls_sideways_and_tables_are_cards_on_a_phone(at: Any, server: ThreadedServer, width: int) -> None:
    page = at(width)
    for path in PAGES:
        page.goto(server.url + path)
        expect(page.locator("main h1").first).to_be_visible()
        _shot(page, _slug(path))
        overflow = page.evaluate(OVERFLOW)
        assert overflow["page"] <= 0, (path, width, overflow)
        assert all(extra <= 1 for extra in overflow["wraps"]), (path, width, overflow)
        assert all(extra <= 1 for extra in overflow["cells"]), (path, width, overflow)  # a label fits its cell
    page.goto(server.url + "/forwarding/dead-letters")
    cell = page.locator("table.cards td[data-label='Destination']").first
    expect(cell).to_contain_text("ci-with-a-long-destination-name")
    label = cell.evaluate("(td) => getComputedStyle(td, '::before').content")
    display = cell.evaluate("(td) => getComputedStyle(td.parentElement).display")
    if width == PHONE:
        assert (label, display) == ('"Destination"', "block")  # a card per row, each cell labelled
    else:
        assert (label, display) == ("none", "table-row")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_long_repository_names_wrap_only_after_separators(at: Any, server: ThreadedServer, width: int) -> None:
    page = at(width)
    seen: list[list[str]] = []
    for path in ["/", f"/repos/{LONG_REPO}", "/releases/7", "/forwarding/dead-letters"]:
        page.goto(server.url + path)
        expect(page.locator(".repo-name").first).to_be_visible()
        for lines in page.evaluate(LINES_OF, ".repo-name"):
            assert "".join(lines) in (LONG_REPO, LONG_OWNER, "octo-org/plain"), lines
            assert all(line[-1] in SEPARATORS for line in lines[:-1]), (path, lines)  # a break follows a separator
            seen.append(lines)
    if width == PHONE:
        assert any(len(lines) > 1 for lines in seen)  # the long name did wrap somewhere (so the test measured one)
    page.set_viewport_size({"width": 240, "height": 900})  # narrower than the owner alone: the last resort
    page.goto(server.url + "/")
    lines = next(n for n in page.evaluate(LINES_OF, ".release-title .repo-name") if "".join(n) == LONG_OWNER)
    assert lines[0][-1] not in SEPARATORS  # broken inside the owner, which alone is wider than the line
    item = page.locator('[data-key="release-8"]')
    assert item.evaluate("(li) => li.scrollWidth <= li.clientWidth")  # no overflow


@pytest.mark.parametrize("width", [DESKTOP, PHONE, 640])  # 640: where the filters turn four columns wide
def test_the_repository_breadcrumb_names_it_and_the_state_select_is_whole(
    at: Any, server: ThreadedServer, width: int
) -> None:
    page = at(width)
    page.goto(f"{server.url}/repos/{LONG_REPO}")
    expect(page.locator(".breadcrumbs")).to_have_text(f"Releases › {LONG_REPO}")
    expect(page.get_by_role("heading", level=1)).to_have_text(LONG_REPO)
    _shot(page, "repository")
    page.goto(server.url + "/")
    state = page.get_by_label("State")
    for value in ["unpublished", "published", ""]:
        state.select_option(value)
        sizes = state.evaluate(
            """(select) => {
              const probe = select.cloneNode(true);
              probe.style.width = "auto";
              probe.style.minWidth = "0";
              probe.style.position = "absolute";
              document.body.append(probe);
              const needed = probe.getBoundingClientRect().width;
              probe.remove();
              const box = select.getBoundingClientRect();
              return {width: box.width, needed, scroll: select.scrollWidth, client: select.clientWidth,
                      outside: box.right - select.parentElement.getBoundingClientRect().right};
            }"""
        )
        assert sizes["scroll"] <= sizes["client"], sizes
        assert sizes["width"] >= sizes["needed"] - 0.5, sizes  # as wide as its longest option wants
        assert sizes["outside"] <= 0.5, sizes  # and within its field (no overlap with the next)
    _shot(page, "filters")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_a_browser_gets_html_error_pages_and_the_api_json(at: Any, server: ThreadedServer, width: int) -> None:
    page = at(width)
    for path, status, title in [
        ("/releases/abc", 404, "Not found"),
        ("/releases/999999", 404, "Not found"),
        ("/releases/99999999999999999999", 404, "Not found"),
        ("/no/such/page", 404, "Not found"),
        ("/?cursor=not-a-cursor", 400, "Invalid request"),
        ("/layout-boom", 500, "Something went wrong"),
    ]:
        response = page.goto(server.url + path)
        assert response is not None
        assert (response.status, response.headers["content-type"].split(";")[0]) == (status, "text/html"), path
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        expect(page.get_by_role("link", name="Back to releases")).to_be_visible()
        expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # signed in: the way on, too
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    page.goto(server.url + "/releases/abc")
    expect(page.locator("main")).to_contain_text("There is no page at /releases/abc.")
    _shot(page, "error-404")
    html = {"Accept": "text/html"}
    wrong_method = page.request.post(server.url + "/releases/7", headers=html, fail_on_status_code=False)
    assert (wrong_method.status, wrong_method.headers["content-type"].split(";")[0]) == (405, "text/html")
    assert "does not answer POST requests" in wrong_method.text()
    for path, code in [("/api/releases/abc", "invalid_request"), ("/api/nothing", "not_found")]:
        answer = page.request.get(server.url + path, headers=html, fail_on_status_code=False)
        assert answer.headers["content-type"] == "application/json", path
        assert answer.json()["error"] == code
    asked_json = page.request.get(server.url + "/no/such/page", headers={"Accept": "application/json"})
    assert (asked_json.status, asked_json.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_dates_are_iso_in_the_inputs_and_round_trip(at: Any, server: ThreadedServer, width: int) -> None:
    page = at(width, locale="de-DE")  # a locale whose own date format is 01.05.2024
    page.goto(server.url + "/")
    since, until = page.get_by_label("From"), page.get_by_label("Until")
    assert (since.get_attribute("type"), since.get_attribute("placeholder")) == (None, "YYYY-MM-DD")
    since.fill("2024-05-01")
    until.fill("2024-05-31")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"since=2024-05-01&until=2024-05-31"))
    expect(since).to_have_value("2024-05-01")
    expect(until).to_have_value("2024-05-31")
    expect(page.locator("#releases > li")).to_have_count(3)
    page.goto(server.url + "/?since=2024-05-16")
    expect(page.locator(".empty")).to_have_text("No release matches these filters.")
    expect(page.get_by_label("From")).to_have_value("2024-05-16")
    since = page.get_by_label("From")
    since.fill("01.05.2024")  # the locale's form is refused by the input before it is sent
    assert since.evaluate("(input) => input.validity.patternMismatch")
    _shot(page, "dates")


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
def test_a_search_hit_shows_the_matched_words_escaped(at: Any, server: ThreadedServer, width: int) -> None:
    page = at(width)
    page.goto(server.url + "/")
    page.get_by_label("Search").fill("zeppelin")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"q=zeppelin"))
    items = page.locator("#releases > li")
    expect(items).to_have_count(2)
    long_hit = page.locator('[data-key="release-7"] .search-hits li')
    expect(long_hit).to_have_count(1)
    expect(long_hit.locator(".hit-field")).to_have_text("notes")
    expect(long_hit.locator("mark")).to_have_text("Zeppelin")
    evil = page.locator('[data-key="release-8"] .search-hits')
    expect(evil).to_contain_text("<script>window.pwned = 1</script>")  # shown as text
    expect(evil.locator("mark")).to_have_text("zeppelin")
    assert evil.locator("script, b").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    _shot(page, "search")
