"""The dashboard's forwarding pages: destinations with counters, a delivery's forwards, dead letters with a
CSRF-protected bulk retry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until
from tests.dashboard_support import csrf_of, session_client
from tests.destinations import Answer, Destination, routes_toml


@pytest.fixture
def refusing() -> Iterator[tuple[Destination, dict[str, int]]]:
    state = {"status": 400}
    with Destination(lambda _r: Answer(status=state["status"], body=b"no such repo")) as dest:
        yield dest, state


@pytest.fixture
def forwarding_server(
    make_settings: Callable[..., Settings], tmp_path: Path, refusing: tuple[Destination, dict[str, int]]
) -> Iterator[ThreadedServer]:
    dest, _ = refusing
    routes = tmp_path / "routes.toml"
    routes.write_text(
        routes_toml(
            {"ci": {"url": dest.url, "secret": "destination-secret"}},
            [{"name": "releases-to-ci", "events": ["release"], "destinations": ["ci"]}],
        )
    )
    settings = make_settings(routes_file=routes, forward_poll_interval=0.05)
    with ThreadedServer(Runtime.build(settings)) as server:
        yield server


def test_destinations_delivery_forwards_and_dead_letter_bulk_retry(
    forwarding_server: ThreadedServer, refusing: tuple[Destination, dict[str, int]]
) -> None:
    server = forwarding_server
    dest, state = refusing
    with httpx.Client(base_url=server.url, timeout=10) as plain:
        for n in range(3):
            assert post_webhook(plain, signed(release(release_id=n + 1), delivery_id=f"dash-{n}")).status_code == 202
    with session_client(server) as client:
        wait_until(lambda: client.get("/forwarding/dead-letters").text.count('name="job_id"') == 3)
        overview = client.get("/forwarding")
        assert overview.status_code == 200
        assert "releases-to-ci" in overview.text
        assert 'data-key="destination-ci"' in overview.text
        assert "HTTP 400" in overview.text
        assert "0.0 %" in overview.text
        delivery = client.get("/deliveries/dash-0").text
        assert 'id="forwards-heading"' in delivery
        assert "no such repo" in delivery  # the answer's excerpt
        page = client.get("/forwarding/dead-letters")
        token = csrf_of(page.text)
        # Without the CSRF token, nothing happens.
        assert client.post("/forwarding/dead-letters/retry", data={"scope": "all"}).status_code == 403
        state["status"] = 200
        job_ids = [line.split('value="')[1].split('"')[0] for line in page.text.splitlines() if 'name="job_id"' in line]
        retried = client.post(
            "/forwarding/dead-letters/retry",
            data={"csrf_token": token, "scope": "selected", "job_id": job_ids[:2]},
        )
        assert retried.status_code == 303
        assert retried.headers["location"].startswith("/forwarding/dead-letters?flash=")
        assert "Queued 2 forwards again." in client.get(retried.headers["location"]).text
        wait_until(lambda: len(dest.accepted) == 2)
        # Nothing selected: no "0 forwards queued", but what to do.
        none = client.post("/forwarding/dead-letters/retry", data={"csrf_token": token, "scope": "selected"})
        assert none.headers["location"] == "/forwarding/dead-letters?selected=none"
        assert "Select at least one dead letter" in client.get(none.headers["location"]).text
        # "Retry all" asks first (a page with a form: no script needed), and only the confirmation retries.
        ask = client.post("/forwarding/dead-letters/retry", data={"csrf_token": token, "scope": "all"})
        assert ask.status_code == 200
        assert "Retry all dead letters?" in ask.text
        assert 'name="confirm" value="1"' in ask.text
        assert len(dest.accepted) == 2
        rest = client.post("/forwarding/dead-letters/retry", data={"csrf_token": token, "scope": "all", "confirm": "1"})
        assert rest.headers["location"].startswith("/forwarding/dead-letters?flash=")
        assert "Queued 1 forward again." in client.get(rest.headers["location"]).text
        wait_until(lambda: dest.delivery_ids() == {"dash-0", "dash-1", "dash-2"})
        wait_until(lambda: 'name="job_id"' not in client.get("/forwarding/dead-letters").text)
        assert "replay 1" in client.get("/deliveries/dash-0").text
        # One delivery, again, from its page.
        assert client.post("/deliveries/dash-1/forward-again", data={"to": "ci"}).status_code == 403
        again = client.post("/deliveries/dash-1/forward-again", data={"csrf_token": token, "to": "ci"})
        assert again.headers["location"].startswith("/deliveries/dash-1?flash=")
        wait_until(lambda: len(dest.accepted) == 4)
        assert "Queued 1 forward to ci." in client.get(again.headers["location"]).text
    assert httpx.get(f"{server.url}/forwarding", follow_redirects=False).status_code in (302, 303, 307)
