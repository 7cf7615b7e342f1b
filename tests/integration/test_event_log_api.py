"""`GET /api/events`' filters (sender, destination, forward status, since/until, delivery id), each event's forwards,
release and failure kind, and bad filter values answered 400 with a JSON error document."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TOKEN, ThreadedServer
from tests.dashboard_support import session_client
from tests.event_log_support import forwarded_server

server = forwarded_server


@pytest.fixture(scope="module")
def api(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
        yield client


def ids(api: httpx.Client, **params: str) -> list[str]:
    response = api.get("/api/events", params=params)
    assert response.status_code == 200, response.text
    return [item["delivery_id"] for item in response.json()["items"]]


def test_each_event_carries_its_forwards_release_and_failure_kind(api: httpx.Client) -> None:
    items = {item["delivery_id"]: item for item in api.get("/api/events").json()["items"]}
    forwards = {(f["destination"], f["status"], f["status_code"]) for f in items["rel-1"]["forwards"]}
    assert forwards == {("ci", "delivered", 200), ("chat", "dead", 410)}
    assert items["rel-1"]["release"] == {"id": 7, "repository": "octo-org/alpha", "tag": "v7.0.0"}
    assert (items["rel-1"]["failure"], items["push-1"]["release"]) == (None, None)
    assert (items["bad-1"]["status"], items["bad-1"]["failure"]) == ("failed", "shape")


def test_the_filters(api: httpx.Client) -> None:
    assert ids(api, sender="bob") == ["push-1"]
    assert ids(api, destination="ci") == ["push-1", "rel-1"]
    assert ids(api, destination="chat", forward_status="dead") == ["rel-1"]
    assert ids(api, forward_status="delivered") == ["push-1", "rel-1"]
    assert ids(api, delivery_id="bad-1") == ["bad-1"]
    assert ids(api, since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert ids(api, since="2000-01-01T00:00:00Z", status="failed") == ["bad-1"]
    first = api.get("/api/events", params={"destination": "ci", "limit": 1}).json()
    second = api.get("/api/events", params={"destination": "ci", "limit": 1, "cursor": first["next_cursor"]}).json()
    assert [i["delivery_id"] for i in (*first["items"], *second["items"])] == ["push-1", "rel-1"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01T00:00:00Z"}, "until"),
        ({"since": "9999-12-31T23:59:59-23:59"}, "since"),
        ({"forward_status": "lost"}, "forward_status"),
        ({"sender": "x" * 201}, "sender"),
    ],
)
def test_bad_filter_values_answer_400(api: httpx.Client, params: dict[str, str], named: str) -> None:
    response = api.get("/api/events", params=params)
    assert response.status_code == 400, response.text
    document = response.json()
    assert set(document) >= {"error", "detail"}
    assert named in document["detail"]


def test_the_delivery_page_says_a_shape_mismatch_needs_a_code_change(server: ThreadedServer) -> None:
    with session_client(server) as client:
        failed = client.get("/deliveries/bad-1").text
        assert 'data-failure="shape"' in failed
        assert "Cannot succeed without a code change" in failed
        assert "data-failure" not in client.get("/deliveries/push-1").text
