"""A server for the overview's and the event log's browser tests: two forward destinations (`ci` accepts, `chat`
answers 410, which dead-letters at once) and a few deliveries: a release forwarded to both, a push by bob forwarded
to ci, and a release whose payload has no release object (a shape mismatch: it fails)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, routes_toml

API = {"Authorization": f"Bearer {TOKEN}"}


def post(server: ThreadedServer, payload: dict[str, object], *, delivery_id: str, event: str = "release") -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert post_webhook(client, signed(payload, delivery_id=delivery_id, event=event)).status_code == 202


def push(sender: str) -> dict[str, object]:
    return {"ref": "refs/heads/main", "repository": {"full_name": "octo-org/alpha"}, "sender": {"login": sender}}


def events(server: ThreadedServer, **params: str) -> list[dict[str, object]]:
    with httpx.Client(base_url=server.url, timeout=10, headers=API) as api:
        items: list[dict[str, object]] = api.get("/api/events", params=params).json()["items"]
        return items


def settled(server: ThreadedServer) -> bool:
    """Every seeded delivery processed and each forward done (delivered or dead)."""
    found = {str(e["delivery_id"]): e for e in events(server)}
    if set(found) != {"rel-1", "push-1", "bad-1"}:
        return False
    forwards = [f for e in found.values() for f in e["forwards"]]  # type: ignore[attr-defined]
    return len(forwards) == 3 and all(f["status"] in ("delivered", "dead") for f in forwards)


@pytest.fixture(scope="module")
def forwarded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    tmp = Path(tmp_path_factory.mktemp("forwarded"))
    with (
        Destination() as ci,
        Destination(lambda _r: Answer(status=410, body=b"gone")) as chat,
    ):
        routes = tmp / "routes.toml"
        routes.write_text(
            routes_toml(
                {"ci": {"url": ci.url, "secret": "ci-secret"}, "chat": {"url": chat.url, "secret": "chat-secret"}},
                [
                    {"name": "releases", "events": ["release"], "destinations": ["ci", "chat"]},
                    {"name": "pushes", "events": ["push"], "destinations": ["ci"]},
                ],
            )
        )
        settings = load_settings(
            database_url=f"sqlite:///{tmp / 'ghingest.db'}",
            data_dir=tmp / "data",
            webhook_secrets=SECRET,
            api_tokens=TOKEN,
            worker_poll_interval=0.05,
            worker_retry_base_delay=0.05,
            routes_file=routes,
            forward_poll_interval=0.05,
        )
        with ThreadedServer(Runtime.build(settings)) as server:
            post(server, release(release_id=7, tag="v7.0.0", repository_name="octo-org/alpha"), delivery_id="rel-1")
            post(server, push("bob"), delivery_id="push-1", event="push")
            post(server, {"action": "published", "repository": {"full_name": "octo-org/alpha"}}, delivery_id="bad-1")
            wait_until(lambda: settled(server))
            yield server
