"""First contact, as a person meets it: `serve` says when it is ready and how to expose a loopback webhook URL;
`send` follows the configured port and its flags and links to the delivery's page; the sign-in page says where
the API token is kept."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest
from typer.testing import CliRunner, Result

from ghingest.app.cli import app
from tests.conftest import TOKEN, wait_until
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path_factory.mktemp("first-contact"))
    process.start()
    yield process
    process.stop()


def ghingest(serve: ServeProcess, *args: str) -> Result:
    """The command line in this process (no interpreter start per call), configured as the server is."""
    return CliRunner().invoke(app, list(args), env=serve.env)


def test_serve_says_it_is_ready_and_how_to_expose_a_loopback_webhook_url(serve: ServeProcess) -> None:
    ready = f"ghingest is ready: accepting connections on {serve.url}"
    output = wait_until(lambda: ready in (text := serve.output()) and text)
    assert output.index("ghingest is starting") < output.index(ready)
    assert f"cloudflared tunnel --url http://127.0.0.1:{serve.port}" in output
    assert f"ngrok http {serve.port}" in output
    assert 'README.md, "Connect GitHub"' in output


def test_send_uses_the_configured_port_follows_its_flags_and_links_the_delivery(serve: ServeProcess) -> None:
    sent = ghingest(serve, "send", "--action", "prereleased", "--release-id", "7001", "--tag", "v7.0.0-rc.1",
                     "--published-at", "2025-02-03T04:05:06Z", "--delivery-id", "first-1")  # fmt: skip
    assert sent.exit_code == 0, sent.stderr
    assert sent.stdout.startswith("202")
    assert f"Delivery page: {serve.url}/deliveries/first-1" in sent.stdout
    release = wait_until(
        lambda: (r := httpx.get(f"{serve.url}/api/releases/7001", headers=AUTH)).is_success and r.json()
    )
    assert (release["prerelease"], release["draft"], release["tag"]) == (True, False, "v7.0.0-rc.1")
    assert release["published_at"].startswith("2025-02-03T04:05:06")
    draft = ghingest(serve, "send", "--url", serve.url, "--action", "created", "--draft", "--release-id", "7002")
    assert draft.exit_code == 0, draft.stderr
    release = wait_until(
        lambda: (r := httpx.get(f"{serve.url}/api/releases/7002", headers=AUTH)).is_success and r.json()
    )
    assert (release["draft"], release["state"], release["published_at"]) == (True, "draft", None)
    with httpx.Client(base_url=serve.url, timeout=10) as browser:
        assert browser.get("/login", params={"token": TOKEN}).status_code == 303
        page = browser.get("/deliveries/first-1")
        assert page.status_code == 200
        assert "first-1" in page.text


def test_send_print_writes_the_sample_and_sends_nothing(serve: ServeProcess) -> None:
    printed = ghingest(serve, "send", "--print", "--draft", "--release-id", "7003", "--url", "http://127.0.0.1:9")
    assert printed.exit_code == 0, printed.stderr
    payload = orjson.loads(printed.stdout)
    assert payload["release"]["id"] == 7003
    assert (payload["release"]["draft"], payload["release"]["published_at"]) == (True, None)
    refused = ghingest(serve, "send", "--url", "http://127.0.0.1:9", "--secret", "whatever-secret")
    assert refused.exit_code == 1  # ran, and failed: nothing listens there
    assert "could not reach http://127.0.0.1:9/webhooks/github" in refused.stderr


def test_the_sign_in_page_says_where_the_token_is_kept(serve: ServeProcess) -> None:
    page = httpx.get(f"{serve.url}/login")
    assert page.status_code == 200
    assert "GHINGEST_API_TOKENS" in page.text
    assert TOKEN not in page.text
