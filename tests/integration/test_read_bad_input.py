"""Bad input to the read side answers 4xx, never 5xx: ids and cursors past int64, NUL in a search, times outside
`datetime`'s range, unusable live resume points; and a stored release with extreme timestamps renders everywhere."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.dashboard_support import session_client

INT64_OVERFLOW = str(2**63)
FAR_FUTURE = "9999-12-31T23:59:59-23:59"  # valid ISO-8601, but 10000-01-01 in UTC
FAR_PAST = "0001-01-01T00:00:00+23:59"  # valid ISO-8601, but year 0 in UTC


def _cursor(items: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(items).encode()).decode("ascii").rstrip("=")  # orjson: no int > 64 bits


def _seed(server: ThreadedServer, delivery_id: str, **kwargs: object) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert post_webhook(client, signed(release(**kwargs), delivery_id=delivery_id)).status_code == 202
    with session_client(server) as client:
        wait_until(lambda: client.get(f"/api/deliveries/{delivery_id}").json()["status"] == "processed")


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    _seed(server, "normal-1", release_id=1, tag="v1.0.0", body="zebra crossing")
    with session_client(server) as signed_in:
        yield signed_in


def _is_error_document(response: httpx.Response, code: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == code


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        (f"/api/releases/{INT64_OVERFLOW}", {}, "invalid_request"),
        (f"/api/releases/-{INT64_OVERFLOW}1", {}, "invalid_request"),
        ("/api/releases", {"cursor": _cursor(["2024-01-01", 2**63])}, "invalid_cursor"),
        ("/api/releases", {"cursor": _cursor(["2024-01-01", -(2**63) - 1])}, "invalid_cursor"),
        ("/api/events", {"cursor": _cursor([2**63])}, "invalid_cursor"),
        ("/api/events", {"cursor": _cursor([True])}, "invalid_cursor"),
        ("/api/dead-letters", {"before": INT64_OVERFLOW}, "invalid_request"),
        ("/api/releases", {"since": FAR_FUTURE}, "invalid_request"),
        ("/api/releases", {"since": FAR_PAST}, "invalid_request"),
    ],
)
def test_the_api_answers_400_with_an_error_document(
    client: httpx.Client, path: str, params: dict[str, str], code: str
) -> None:
    _is_error_document(client.get(path, params=params), code)


def test_a_replay_window_outside_the_datetime_range_is_refused(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as api:
        _is_error_document(api.post("/api/replays", json={"since": FAR_FUTURE}), "invalid_request")
        _is_error_document(api.post("/api/replays", json={"job_ids": [2**63]}), "invalid_request")


def test_a_search_with_nul_is_searched_not_a_500(client: httpx.Client) -> None:
    found = client.get("/api/releases", params={"q": "zebra\x00cros"})
    assert found.status_code == 200, found.text
    assert [item["id"] for item in found.json()["items"]] == [1]
    assert client.get("/", params={"q": "\x00"}).status_code == 200


def test_dashboard_pages_answer_a_400_page_for_values_past_int64(client: httpx.Client) -> None:
    # A page's path value past int64 names no page: 404, an HTML page too (a query or form value is 400).
    release = client.get(f"/releases/{INT64_OVERFLOW}")
    assert release.status_code == 404, release.text[:300]
    assert release.headers["content-type"].startswith("text/html")
    assert "<h1" in release.text
    for path, params in [
        ("/events", {"cursor": _cursor([2**63])}),
        ("/", {"cursor": _cursor(["2024-01-01", 2**63])}),
        ("/repos/octo-org/octo-repo", {"cursor": _cursor(["2024-01-01", 2**63])}),
        ("/forwarding/dead-letters", {"before": INT64_OVERFLOW}),
    ]:
        page = client.get(path, params=params)
        assert page.status_code == 400, (path, page.text[:300])
        assert page.headers["content-type"].startswith("text/html")
        assert "<h1>" in page.text


def test_dashboard_dates_at_the_end_of_the_calendar_filter_instead_of_failing(client: httpx.Client) -> None:
    until_the_end = client.get("/", params={"until": "9999-12-31"})
    assert until_the_end.status_code == 200
    assert "v1.0.0" in until_the_end.text
    assert client.get("/", params={"since": "9999-12-31"}).status_code == 200
    assert client.get("/", params={"since": "0001-01-01", "until": "0001-01-01"}).status_code == 200


def _hello(
    client: httpx.Client, *, params: dict[str, str] | None = None, headers: dict[str, str | bytes] | None = None
) -> str:
    with client.stream("GET", "/live", params=params, headers=headers) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        for line in lines:
            if line == "event: hello":
                return next(lines)
    raise AssertionError("no hello")


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"after": "²"}, None),
        ({"after": "١٢"}, None),
        ({"after": "9" * 5000}, None),
        ({"after": INT64_OVERFLOW}, None),
        ({"after": "-1"}, None),
        (None, {"Last-Event-ID": "9" * 5000}),
        (None, {"Last-Event-ID": b"\xb2"}),  # '²' in latin-1, as a header carries it
    ],
)
def test_an_unusable_live_resume_point_starts_from_now(
    client: httpx.Client, params: dict[str, str] | None, headers: dict[str, str | bytes] | None
) -> None:
    latest = _hello(client)
    assert _hello(client, params=params, headers=headers) == latest


def test_a_release_with_timestamps_past_the_calendar_renders_everywhere(server: ThreadedServer) -> None:
    """Seeded through the real pipeline: the processor keeps the payload's timestamps as they are."""
    _seed(server, "far-1", release_id=2**53, tag="v-far", published_at=FAR_FUTURE, created_at=FAR_PAST)
    _seed(server, "normal-2", release_id=2, tag="v2.0.0", repository_name="octo-org/other")
    with session_client(server) as client:
        for path in ("/", "/releases/9007199254740992", "/repos/octo-org/octo-repo", "/events"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text[:300])
        landing = client.get("/").text
        assert "v-far" in landing
        assert FAR_FUTURE in landing  # shown as given: it is no date the calendar has
        assert "<svg" in landing  # the chart still draws (its window ends in year 9999)
        detail = client.get("/releases/9007199254740992").text
        assert FAR_FUTURE in detail
        assert FAR_PAST in detail
        assert client.get("/api/releases").status_code == 200
        item = client.get("/api/releases/9007199254740992").json()
        assert item["published_at"] == FAR_FUTURE
