"""Destination health and control over real HTTP: ghingest served by uvicorn, two destinations served by uvicorn.

A pause holds a destination's forwards while the other destination's flow; the resume delivers every one of them,
none lost, none dead-lettered, no attempt made while paused. A test delivery is a GitHub `ping` the destination
verifies with its own secret, and is no attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from ghingest.core import signature
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import Destination, routes_toml

CI_SECRET = "ci-destination-secret-0123"
CHAT_SECRET = "chat-destination-secret-4567"


@dataclass
class World:
    server: ThreadedServer
    ci: Destination
    chat: Destination

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("destination-health")
    with Destination(secret=CI_SECRET) as ci, Destination(secret=CHAT_SECRET) as chat:
        routes = folder / "routes.toml"
        routes.write_text(
            routes_toml(
                {"ci": {"url": ci.url, "secret": CI_SECRET}, "chat": {"url": chat.url, "secret": CHAT_SECRET}},
                [{"name": "releases", "events": ["release"], "destinations": ["ci", "chat"]}],
            )
        )
        env = {
            "GHINGEST_DATABASE_URL": f"sqlite:///{folder / 'ghingest.db'}",
            "GHINGEST_DATA_DIR": str(folder / "data"),
            "GHINGEST_WEBHOOK_SECRETS": SECRET,
            "GHINGEST_API_TOKENS": TOKEN,
            "GHINGEST_ROUTES_FILE": str(routes),
        }
        settings = load_settings(
            **{name.removeprefix("GHINGEST_").lower(): value for name, value in env.items()},
            worker_poll_interval=0.05,
            forward_poll_interval=0.05,
        )
        with ThreadedServer(Runtime.build(settings)) as server:
            yield World(server, ci, chat)


def destination(api: httpx.Client, name: str) -> dict[str, Any]:
    response = api.get("/api/destinations")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = next(d for d in response.json() if d["name"] == name)
    return found


def send_releases(api: httpx.Client, prefix: str, count: int) -> set[str]:
    ids = {f"{prefix}-{n}" for n in range(count)}
    for n, delivery_id in enumerate(sorted(ids)):
        assert post_webhook(api, signed(release(release_id=5000 + n), delivery_id=delivery_id)).status_code == 202
    return ids


def test_a_pause_holds_every_forward_and_the_resume_delivers_them_all(world: World) -> None:
    with world.api() as api:
        paused = api.post("/api/destinations/ci/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"]["paused_by"] == "api token"
        ids = send_releases(api, "held", 12)
        wait_until(lambda: world.chat.delivery_ids() >= ids)  # the other destination flows
        ci = destination(api, "ci")
        assert (ci["queued"], ci["attempts"], ci["dead"]) == (12, 0, 0)  # they wait; nothing is attempted
        assert not world.ci.delivery_ids() & ids
        assert ci["paused"]["paused_at"] is not None
        assert 'ghingest_forward_destination_paused{destination="ci"} 1.0' in api.get("/metrics").text

        resumed = api.post("/api/destinations/ci/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["paused"] is None
        wait_until(lambda: world.ci.delivery_ids() >= ids)
        wait_until(lambda: destination(api, "ci")["queued"] == 0)
        ci = destination(api, "ci")
        assert (ci["attempts"], ci["delivered"], ci["dead"]) == (12, 12, 0)  # each once, none lost
        assert ci["health"] == {"state": "healthy", "reason": "success rate 100.0% in the last hour"}
        hour = ci["windows"][0]
        assert (hour["window_seconds"], hour["attempts"], hour["delivered"]) == (3600, 12, 12)
        assert 0 < hour["p50_ms"] <= hour["p95_ms"]
        assert api.post("/api/destinations/ci/resume").json()["paused"] is None  # resuming again: nothing to do
        assert 'ghingest_forward_destination_paused{destination="ci"} 0.0' in api.get("/metrics").text


def test_a_test_delivery_is_a_ping_signed_with_the_destinations_secret_and_no_attempt(world: World) -> None:
    with world.api() as api:
        before = destination(api, "ci")["attempts"]
        api.post("/api/destinations/ci/pause")  # a test is sent while paused: it is how one checks it is back
        answer = api.post("/api/destinations/ci/test")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result["destination"], result["status_code"], result["delivered"]) == ("ci", 200, True)
        assert result["latency_ms"] > 0
        assert result["response_excerpt"] == "ok"
        [got] = [r for r in world.ci.accepted if r.headers["x-github-delivery"] == result["delivery_id"]]
        assert got.headers["x-github-event"] == "ping"
        assert signature.verify(got.body, signature_256=got.headers["x-hub-signature-256"],
                                secrets=[CI_SECRET.encode()]) == 0  # fmt: skip
        with pytest.raises(Exception, match="signature"):
            signature.verify(got.body, signature_256=got.headers["x-hub-signature-256"], secrets=[CHAT_SECRET.encode()])
        ping = orjson.loads(got.body)
        assert isinstance(ping["zen"], str)
        assert ping["zen"]
        assert ping["hook_id"] == ping["hook"]["id"] == int(got.headers["x-github-hook-id"])
        assert ping["hook"]["config"] == {
            "content_type": "json",
            "insecure_ssl": "0",
            "url": world.ci.url[: -len("/hook")],
        }
        ci = destination(api, "ci")
        assert ci["attempts"] == before  # not in the attempt log, not in the health figures
        assert ci["last_test"]["delivery_id"] == result["delivery_id"]
        assert ci["last_test"]["sent_by"] == "api token"
        api.post("/api/destinations/ci/resume")

        for action in ("pause", "resume", "test"):
            missing = api.post(f"/api/destinations/nowhere/{action}")
            assert missing.status_code == 404
            assert missing.json() == {"error": "not_found", "detail": "no destination named 'nowhere'"}
        assert httpx.post(f"{world.server.url}/api/destinations/ci/pause").status_code == 401
