"""The webhook route through a real uvicorn server: every status code it promises, and the store left intact."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghingest.app import sender
from ghingest.core.signature import sign
from tests.conftest import SECRET, ThreadedServer, post_webhook, release, signed, sqlite_path, wait_until

HUGE = b'{"action": "published", "release": {"id": 1, "size": 1e400}}'
LONG = b'{"action": "published", "release": {"id": 1' + b"0" * 5000 + b"}}"


def stored_ids(server: ThreadedServer) -> list[str]:
    with sqlite3.connect(sqlite_path(server.runtime)) as conn:
        return [row[0] for row in conn.execute("SELECT delivery_id FROM deliveries ORDER BY seq")]


def metric(client: httpx.Client, name: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_signed_delivery_is_202_then_a_redelivery_is_200_duplicate(api: httpx.Client, server: ThreadedServer) -> None:
    request = signed(release(), delivery_id="11111111-2222-3333-4444-555555555555")
    first = post_webhook(api, request)
    assert (first.status_code, first.json()) == (202, {"delivery_id": "11111111-2222-3333-4444-555555555555"})
    again = post_webhook(api, request)
    assert again.status_code == 200
    assert again.json() == {"delivery_id": "11111111-2222-3333-4444-555555555555", "duplicate": True}
    assert stored_ids(server) == ["11111111-2222-3333-4444-555555555555"]


def test_every_hook_that_delivers_an_id_already_recorded_is_counted(api: httpx.Client, server: ThreadedServer) -> None:
    """GitHub gives every hook subscribed to an event the same delivery id: one record, each hook's sighting."""
    payload = orjson.dumps(release())
    by_repo_hook = sender.hookshot_request(payload, event="release", secret=SECRET, delivery_id="shared-1", hook_id=1)
    by_org_hook = sender.hookshot_request(payload, event="release", secret=SECRET, delivery_id="shared-1", hook_id=2)
    assert post_webhook(api, by_repo_hook).status_code == 202
    assert post_webhook(api, by_org_hook).json() == {"delivery_id": "shared-1", "duplicate": True}
    assert post_webhook(api, by_org_hook).status_code == 200
    assert post_webhook(api, by_repo_hook).status_code == 200  # a redelivery by the first hook
    delivery = api.get("/api/deliveries/shared-1").json()
    assert delivery["hook_id"] == "1"
    sightings = {s["hook_id"]: (s["count"], s["same_body"]) for s in delivery["sightings"]}
    assert sightings == {"2": (2, True), "1": (1, True)}
    assert stored_ids(server) == ["shared-1"]


def test_the_whole_request_is_recorded_headers_body_and_matched_secret(api: httpx.Client) -> None:
    request = signed(release(), delivery_id="exact-1")
    assert post_webhook(api, request).status_code == 202
    delivery = api.get("/api/deliveries/exact-1", params={"raw": 1}).json()
    assert delivery["body"].encode() == request.body
    assert delivery["headers"]["x-hub-signature-256"] == request.headers["X-Hub-Signature-256"]
    assert delivery["headers"]["x-github-hook-installation-target-type"] == "repository"
    assert delivery["secret_index"] == 0
    without_raw = api.get("/api/deliveries/exact-1").json()
    assert without_raw["body"] is None


def test_rotated_secret_is_recorded_by_index(make_settings: object) -> None:
    from ghingest.app.runtime import Runtime

    settings = make_settings(webhook_secrets=f"new-secret-value,{SECRET}")  # type: ignore[operator]
    with ThreadedServer(Runtime.build(settings)) as running, httpx.Client(base_url=running.url) as client:
        assert post_webhook(client, signed(release(), delivery_id="rot-1")).status_code == 202
        assert (
            post_webhook(client, signed(release(), delivery_id="rot-2", secret="new-secret-value")).status_code == 202
        )
    with sqlite3.connect(sqlite_path(running.runtime)) as conn:
        rows = dict(conn.execute("SELECT delivery_id, secret_index FROM deliveries").fetchall())
    assert rows == {"rot-1": 1, "rot-2": 0}


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda h, b: (h | {"X-Hub-Signature-256": sign(b + b" ", SECRET.encode())}, b), 401, "invalid_signature"),
        (lambda h, b: (h | {"X-Hub-Signature-256": sign(b, b"wrong secret")}, b), 401, "invalid_signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, b), 401, "invalid_signature"),
        (lambda h, b: (h | {"X-Hub-Signature-256": h["X-Hub-Signature-256"][:-4]}, b), 401, "invalid_signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Event"}, b), 400, "missing_header"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Delivery"}, b), 400, "missing_header"),
        (lambda h, b: (h | {"Content-Type": "text/plain"}, b), 415, "unsupported_media_type"),
        (lambda h, b: (h | {"X-Hub-Signature-256": sign(b"[1]", SECRET.encode())}, b"[1]"), 400, "invalid_payload"),
        (lambda h, b: (h | {"X-Hub-Signature-256": sign(HUGE, SECRET.encode())}, HUGE), 400, "invalid_payload"),
        (lambda h, b: (h | {"X-Hub-Signature-256": sign(LONG, SECRET.encode())}, LONG), 400, "invalid_payload"),
    ],
    ids=[
        "tampered",
        "wrong-secret",
        "missing-signature",
        "truncated",
        "no-event",
        "no-delivery",
        "415",
        "array",
        "1e400",
        "5000-digits",
    ],
)
def test_bad_requests_get_a_json_error_and_store_nothing(
    api: httpx.Client, server: ThreadedServer, mutate: object, status: int, code: str
) -> None:
    request = signed(release())
    headers, body = mutate(dict(request.headers), request.body)  # type: ignore[operator]
    response = api.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert stored_ids(server) == []


def test_a_signed_webhook_in_the_pollers_namespace_is_refused(api: httpx.Client, server: ThreadedServer) -> None:
    """A change's source is read from its delivery id (`poll:` is the poller's): a webhook may not claim it."""
    response = post_webhook(api, signed(release(), delivery_id="poll:123456789:0123abcd"))
    assert response.status_code == 400
    assert response.json()["error"] == "missing_header"
    assert "'poll:'" in response.json()["detail"]
    assert stored_ids(server) == []


def test_signature_failures_are_counted(api: httpx.Client) -> None:
    before = metric(api, "ghingest_signature_failures_total")
    request = signed(release(), secret="not-the-secret")
    assert post_webhook(api, request).status_code == 401
    assert metric(api, "ghingest_signature_failures_total") == before + 1


def test_form_encoded_delivery_is_accepted_and_processed(api: httpx.Client) -> None:
    assert post_webhook(api, signed(release(release_id=77), delivery_id="form-1", form=True)).status_code == 202
    got = wait_until(lambda: api.get("/api/releases/77").status_code == 200 and api.get("/api/releases/77").json())
    assert got["history"][0]["delivery_id"] == "form-1"


def test_sha1_only_is_refused_by_default(api: httpx.Client) -> None:
    request = signed(release())
    headers = {k: v for k, v in request.headers.items() if k != "X-Hub-Signature-256"}
    assert api.post("/webhooks/github", content=request.body, headers=headers).status_code == 401


def test_only_post_is_allowed(api: httpx.Client) -> None:
    response = api.get("/webhooks/github")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_a_declared_body_over_25_mib_is_413_before_it_is_read(server: ThreadedServer) -> None:
    request = signed(release())
    head = [
        "POST /webhooks/github HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        *(f"{k}: {v}" for k, v in request.headers.items()),
        f"Content-Length: {25 * 1024 * 1024 + 1}",
        "",
        "",
    ]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall("\r\n".join(head).encode())  # no body is sent at all
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert "payload_too_large" in answer


def test_a_streamed_body_over_the_cap_is_413(make_settings: object) -> None:
    from ghingest.app.runtime import Runtime

    settings = make_settings(max_body_bytes=64 * 1024)  # type: ignore[operator]
    with ThreadedServer(Runtime.build(settings)) as running, httpx.Client(base_url=running.url) as client:
        body = b'{"padding": "' + b"x" * (128 * 1024) + b'"}'
        request = signed(body)

        def chunks() -> object:
            for start in range(0, len(body), 16 * 1024):
                yield body[start : start + 16 * 1024]

        response = client.post("/webhooks/github", content=chunks(), headers=request.headers)  # chunked, no length
        assert response.status_code == 413
        assert stored_ids(running) == []


def test_a_store_that_cannot_commit_answers_503_with_retry_after(api: httpx.Client, server: ThreadedServer) -> None:
    asyncio.run(server.runtime.backend.resources.close())  # the store is gone: nothing can be committed
    response = post_webhook(api, signed(release()))
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"] == "store_unavailable"


header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "X-GitHub-Event",
                "X-GitHub-Delivery",
                "Content-Type",
                "X-Hub-Signature-256",
                "X-Hub-Signature",
                "X-GitHub-Hook-ID",
            ]
        ),
        header_value,
    ),
    body=st.binary(max_size=300),
    sign_it=st.booleans(),
)
def test_arbitrary_headers_and_bytes_never_give_a_5xx(
    api: httpx.Client, headers: dict[str, str], body: bytes, sign_it: bool
) -> None:
    if sign_it:
        headers = {**headers, "X-Hub-Signature-256": sign(body, SECRET.encode())}
    response = api.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert set(response.json()) == {"error", "detail"}


def test_schema_matches_the_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from ghingest.adapters.sql import migrate
    from ghingest.adapters.sql.schema import metadata

    url = f"sqlite:///{tmp_path / 'schema.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert [d for d in diff if "fts" not in str(d)] == []


def test_metric_labels_take_only_documented_event_names(api: httpx.Client) -> None:
    """`X-GitHub-Event` is not signed: 300 made-up names must not make 300 metric series."""
    for n in range(300):
        assert post_webhook(api, signed(release(), event=f"made_up_{n}")).status_code == 202
    assert post_webhook(api, signed(release(), event="release")).status_code == 202
    labels = set()
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("ghingest_deliveries_total{"):
            labels.add(line.split('event="', 1)[1].split('"', 1)[0])
    assert labels <= {"release", "other", "unverified"}
    assert {"release", "other"} <= labels
