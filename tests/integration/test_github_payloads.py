"""Every webhook GitHub documents goes through the whole pipeline: received, processed, forwarded.

The payloads are `tests/fixtures/github_payloads.jsonl`, one schema-valid payload per webhook (event and action)
of GitHub's published webhooks description, generated with the vocabulary by `scripts/generate_github_events.py`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from tests.conftest import TOKEN, ThreadedServer, post_webhook, signed, wait_until
from tests.destinations import Destination, routes_toml

FIXTURE = Path(__file__).parent.parent / "fixtures" / "github_payloads.jsonl"


def webhooks() -> list[dict[str, Any]]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[1:]]  # the first line names the schema's source


def test_the_fixture_covers_every_event_of_the_vocabulary() -> None:
    from ghingest.core.github_events import EVENTS

    covered = {row["event"] for row in webhooks()}
    assert len(covered) >= 70
    assert covered <= EVENTS


def test_every_documented_webhook_is_processed_and_forwarded(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    rows = webhooks()
    with Destination() as destination:
        routes = tmp_path / "routes.toml"
        routes.write_text(routes_toml({"all": {"url": destination.url, "secret": "destination-secret"}},
                                      [{"name": "everything", "destinations": ["all"]}]))  # fmt: skip
        settings = make_settings(routes_file=routes, forward_poll_interval=0.05)
        with (
            ThreadedServer(Runtime.build(settings)) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client,
        ):
            ids = {}
            for row in rows:
                delivery_id = str(uuid.uuid4())
                ids[delivery_id] = row["webhook"]
                response = post_webhook(client, signed(row["payload"], event=row["event"], delivery_id=delivery_id))
                assert response.status_code == 202, (row["webhook"], response.text)

            def all_processed() -> list[dict[str, Any]] | None:
                items: list[dict[str, Any]] = []
                cursor = None
                while True:
                    page = client.get("/api/events", params={"limit": 200, **({"cursor": cursor} if cursor else {})})
                    items += page.json()["items"]
                    cursor = page.json()["next_cursor"]
                    if cursor is None:
                        return items if len(items) == len(rows) else None

            events = wait_until(all_processed, timeout=60)
            failed = [(ids[e["delivery_id"]], e["error"]) for e in events if e["status"] != "processed"]
            warned = [(ids[e["delivery_id"]], e["shape_warning"]) for e in events if e["shape_warning"]]
            assert failed == []
            assert warned == []
            wait_until(lambda: destination.delivery_ids() >= set(ids), timeout=60)
