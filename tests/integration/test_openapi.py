"""The committed docs/openapi.yaml is exactly what the application serves."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from tests.conftest import ThreadedServer

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_served_document_matches_the_committed_one(server: ThreadedServer) -> None:
    served = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    committed = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    assert served == committed, "docs/openapi.yaml is stale: run `make openapi` and commit the result"


def test_webhook_route_is_documented_with_its_headers_and_statuses(server: ThreadedServer) -> None:
    served = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    operation = served["paths"]["/webhooks/github"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"X-GitHub-Event", "X-GitHub-Delivery", "X-Hub-Signature-256"} <= headers
    assert {"200", "202", "400", "401", "413", "415", "503"} <= set(operation["responses"])
