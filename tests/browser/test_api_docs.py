"""The API page `/docs` in a real headless Chromium: Swagger UI from the package lists every operation of the
OpenAPI document, under the dashboard's Content-Security-Policy, with no request outside the app (the `page` fixture
asserts that), at desktop and phone widths; "Authorize" with a token makes "Try it out" work."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from ghingest.app.runtime import Runtime
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, settings_in, signed, wait_until

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    """One server for the module, with one release to read."""
    settings = settings_in(tmp_path_factory.mktemp("api-docs"))
    with ThreadedServer(Runtime.build(settings)) as running, httpx.Client(base_url=running.url, timeout=10) as client:
        payload = signed(release(release_id=7, tag="v7.0.0"), delivery_id="docs-1")
        assert post_webhook(client, payload).status_code == 202
        headers = {"Authorization": f"Bearer {TOKEN}"}
        wait_until(lambda: len(client.get("/api/releases", headers=headers).json()["items"]) == 1)
        yield running


@pytest.fixture(scope="module")
def operation_ids(server: ThreadedServer) -> list[str]:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    return [op["operationId"] for item in document["paths"].values() for op in item.values()]


def _open(page: Page, server: ThreadedServer) -> list[str]:
    """Open /docs; the console's errors (a Content-Security-Policy violation is one) are collected."""
    errors: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", keep)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ghingest")
    return errors


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_page_lists_every_operation(
    page: Page, server: ThreadedServer, operation_ids: list[str], viewport: dict[str, int]
) -> None:
    page.set_viewport_size(viewport)
    errors = _open(page, server)
    listed = page.locator(".opblock .opblock-summary-operation-id")
    expect(listed).to_have_count(len(operation_ids))
    assert sorted(listed.all_inner_texts()) == sorted(operation_ids)
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the page scrolls sideways at {viewport['width']} px ({width} px wide)"
    assert errors == []
    if viewport == DESKTOP:
        screenshot(page, "api-docs")  # and its dark and 375 px variants
    else:
        page.screenshot(path=str(SCREENSHOTS / f"api-docs-{viewport['width']}.png"), full_page=True)


def test_authorize_with_a_token_then_try_it_out(page: Page, server: ThreadedServer) -> None:
    page.set_viewport_size(DESKTOP)
    errors = _open(page, server)
    page.get_by_role("button", name="Authorize").click()
    dialog = page.locator(".dialog-ux")
    dialog.get_by_label("auth-bearer-value").fill(TOKEN)
    dialog.get_by_role("button", name="Apply credentials").first.click()
    dialog.get_by_role("button", name="Close").first.click()
    operation = page.locator("#operations-releases_and_events-listReleases")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    expect(status).to_have_text("200")
    expect(operation.locator(".live-responses-table .highlight-code")).to_contain_text("v7.0.0")
    assert errors == []
    page.screenshot(path=str(SCREENSHOTS / "api-docs-try-it-out.png"), full_page=True)
