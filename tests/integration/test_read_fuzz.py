"""Every GET route of the application, with hostile values for every declared path, query and header parameter
(and `Last-Event-ID` everywhere), against a real server over a real SQLite file: never a 5xx.

The routes and their parameters come from the FastAPI application itself, so a new route or parameter is covered
without touching this test. The store holds ordinary releases and events, a failed event, and releases whose
payload timestamps are past the calendar or no time at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until
from tests.dashboard_support import session_client

FAR_FUTURE = "9999-12-31T23:59:59-23:59"
FAR_PAST = "0001-01-01T00:00:00+23:59"
MAX_TARGET = 12_000  # request-target characters: beyond what any server must accept, and not what is tested here


@dataclass(frozen=True)
class RouteParams:
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    header_params: tuple[str, ...]


def _fields(dependant: Dependant) -> Iterator[tuple[str, str]]:
    """(kind, name) of every parameter the route and its dependencies declare."""
    for kind, fields in (("query", dependant.query_params), ("header", dependant.header_params)):
        for field in fields:
            yield kind, field.alias
    for sub in dependant.dependencies:
        yield from _fields(sub)


def _api_routes(app: FastAPI) -> Iterator[tuple[str, APIRoute]]:
    """(effective path, route) of every FastAPI route, whichever way this FastAPI keeps included routers."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]
    except ImportError:  # a FastAPI that copies included routes into `app.routes`
        yield from ((route.path, route) for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.path, context.original_route


def get_routes(app: FastAPI) -> list[RouteParams]:
    routes = []
    for path, route in _api_routes(app):
        if "GET" not in route.methods:
            continue
        fields = sorted(set(_fields(route.dependant)))
        routes.append(
            RouteParams(
                path=path,
                path_params=tuple(route.param_convertors),
                query_params=tuple(name for kind, name in fields if kind == "query"),
                header_params=tuple(name.replace("_", "-") for kind, name in fields if kind == "header"),
            )
        )
    return routes


HOSTILE = [
    "", " ", "0", "1", "-1", "-0", "+1", "007", "1.5", "1e309", "0x1f", "1_000", str(2**63 - 1), str(2**63),
    str(2**64), str(-(2**63)), str(-(2**63) - 1), "9" * 5000, "0" * 5000 + "1", "²", "١٢٣", "１２３", "߁",
    "\x00", "a\x00b", "\ud800", "\udfff", "a\udc80b", "x" * 6000, "9999-12-31", FAR_FUTURE, FAR_PAST, "10000-01-01",
    "0000-00-00", "2024-02-30", "-2024-01-01", "2024-01-01T25:00", "2024-W01-1", "2024-05-01", '{"a": 1}', "[1]",
    "[", "]", "null", "true", "false", '"', "NaN", "Infinity", "{}", "[]", "'", "\\", "%", "*", "NEAR(a b)",
    "a OR b", '"a" *', "published", "draft", "deleted", "processed", "failed", "yes", "no", "release", "created",
    "../../etc/passwd", "<script>alert(1)</script>", "\r\n", "\t", "\U0010ffff", "\ufeff",
]  # fmt: skip
ALREADY_ENCODED = ["%", "%zz", "%E2%82", "%ED%A0%80", "%FF%FE", "%C0%80", "%%", "+", "%2B", "%20", "%2F", "%00"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii").rstrip("=")


json_scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
cursors = st.one_of(
    st.lists(json_scalars, max_size=3).map(lambda items: _b64(json.dumps(items))),
    st.sampled_from(["[", '{"a":1}', "null", '"x"', '["9999-12-31T23:59:59-23:59", 9223372036854775808]']).map(_b64),
)
texts = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    cursors,
)


def _encoded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Values as they travel in a URL: percent-encoded UTF-8 (lone surrogates too), raw bytes, or broken escapes."""
    return st.one_of(
        values.map(lambda text: quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe="")),
        st.binary(max_size=12).map(lambda raw: quote_from_bytes(raw, safe="")),
        st.sampled_from(ALREADY_ENCODED),
    )


def _header_value(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()[:6000]


@dataclass(frozen=True)
class Seeded:
    server: ThreadedServer
    client: httpx.Client  # signed in
    known: tuple[str, ...]  # ids, names and cursors that exist, so that routes get past "not found" too


def _seed(server: ThreadedServer, client: httpx.Client) -> tuple[str, ...]:
    payloads: list[tuple[str, str, dict[str, object] | bytes]] = [
        ("n-1", "release", release(release_id=1, tag="v1.0.0", repository_name="octo-org/alpha", body="zebra")),
        ("n-2", "release", release(release_id=2, tag="v2.0.0-rc1", repository_name="octo-org/beta", prerelease=True)),
        ("n-3", "release", release(release_id=3, tag="v3", action="created", draft=True)),
        ("far", "release", release(release_id=2**62, tag="v-far", published_at=FAR_FUTURE, created_at=FAR_PAST,
                                   repository_name="octo-org/far")),
        ("odd", "release", release(release_id=5, tag="v-odd", published_at="not a time", created_at="",
                                   repository_name="octo-org/odd")),
        ("bad", "release", orjson.dumps({"action": "published", "release": {"tag_name": "no id"}})),
        ("ping-1", "ping", {"zen": "Keep it logically awesome.", "hook_id": 1}),
    ]  # fmt: skip
    for delivery_id, event, payload in payloads:
        assert post_webhook(client, signed(payload, event=event, delivery_id=delivery_id)).status_code == 202
    for delivery_id, _, _ in payloads:
        wait_until(lambda d=delivery_id: client.get(f"/api/deliveries/{d}").json()["status"] != "received")
    page = client.get("/api/releases", params={"limit": 2}).json()
    events = client.get("/api/events", params={"limit": 2}).json()
    return ("1", "2", "3", "5", str(2**62), "n-1", "bad", "ping-1", "octo-org", "alpha", "far", "odd", "octo-org/far",
            page["next_cursor"], events["next_cursor"])  # fmt: skip


@pytest.fixture
def seeded(server: ThreadedServer) -> Iterator[Seeded]:
    with session_client(server) as client:
        yield Seeded(server=server, client=client, known=_seed(server, client))


def _request_target(data: st.DataObject, route: RouteParams, known: tuple[str, ...]) -> str:
    values = _encoded(st.one_of(texts, st.sampled_from(known)))
    path = route.path
    for name in route.path_params:
        path = path.replace(f"{{{name}}}", data.draw(values, label=name))
    query = [
        f"{name}={data.draw(values, label=name)}"
        for name in route.query_params
        if data.draw(st.booleans(), label=f"with {name}")
    ]
    target = path + ("?" + "&".join(query) if query else "")
    return target if len(target) <= MAX_TARGET else target[:MAX_TARGET]


def _check(route: RouteParams, response: httpx.Response) -> None:
    assert response.status_code < 500, (route.path, response.status_code, response.text[:500])
    if route.path.startswith("/api/") and response.status_code >= 400:
        assert set(response.json()) == {"error", "detail"}, response.text[:500]


@settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_read_route_answers_5xx_to_hostile_parameters(seeded: Seeded, data: st.DataObject) -> None:
    routes = get_routes(seeded.server.app.api)
    route = data.draw(st.sampled_from(routes), label="route")
    target = _request_target(data, route, seeded.known)
    headers: dict[str, bytes] = {}
    for name in ("Last-Event-ID", *route.header_params):
        if data.draw(st.booleans(), label=f"with {name}"):
            headers[name] = _header_value(data.draw(st.one_of(texts, st.sampled_from(seeded.known)), label=name))
    client = seeded.client
    if route.path == "/live":
        with client.stream("GET", target, headers=headers) as stream:
            _check(route, stream)
            if stream.status_code == 200:
                lines = stream.iter_lines()
                assert "event: hello" in (next(lines) for _ in range(4))  # then the stream would wait: done
    else:
        _check(route, client.get(target, headers=headers))


def test_the_fuzzed_routes_are_the_applications_read_routes(seeded: Seeded) -> None:
    """The enumeration finds what the brief names; a new GET route is fuzzed without touching the test."""
    routes = {route.path: route for route in get_routes(seeded.server.app.api)}
    for path in ("/api/releases", "/api/releases/{release_id}", "/api/events", "/api/deliveries/{delivery_id}",
                 "/api/dead-letters", "/", "/releases/{release_id}", "/repos/{owner}/{name}", "/events",
                 "/deliveries/{delivery_id}", "/forwarding", "/forwarding/dead-letters", "/live"):  # fmt: skip
        assert path in routes, path
    assert {"cursor", "since", "q", "limit", "repo", "state", "prerelease"} <= set(routes["/api/releases"].query_params)
    assert routes["/live"].header_params == ("last-event-id",)
    assert routes["/repos/{owner}/{name}"].path_params == ("owner", "name")
