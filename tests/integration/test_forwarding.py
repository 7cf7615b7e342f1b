"""Forwarding over real HTTP: ghingest served by uvicorn, destinations served by uvicorn, all on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.core import signature
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.destinations import (
    Answer,
    Destination,
    Proxy,
    Received,
    certificates,
    readme_chat_template,
    routes_toml,
)

DEST_SECRET = "destination-secret-0123"
FAST_RETRY = {"base_delay": 0.05, "max_delay": 0.2, "max_attempts": 200, "max_age": 120.0}


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    return tmp_path / "routes.toml"


@pytest.fixture
def start(make_settings: Callable[..., Settings], routes_file: Path) -> Iterator[Callable[[], ThreadedServer]]:
    """Start ghingest with the route file as it is when called."""
    servers: list[ThreadedServer] = []

    def start_server() -> ThreadedServer:
        settings = make_settings(routes_file=routes_file, forward_poll_interval=0.05, routes_reload_interval=0.05)
        server = ThreadedServer(Runtime.build(settings)).__enter__()
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.__exit__(None, None, None)


def client(server: ThreadedServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def one_route(url: str, **destination: Any) -> str:
    return routes_toml(
        {"ci": {"url": url, "secret": DEST_SECRET, **destination}},
        [{"name": "releases-to-ci", "events": ["release"], "destinations": ["ci"]}],
    )


def forwards(api: httpx.Client, delivery_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/deliveries/{delivery_id}/forwards")
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def test_destination_verifies_the_re_signed_exact_body_and_gets_githubs_headers(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    with Destination(secret=DEST_SECRET) as dest:
        routes_file.write_text(one_route(dest.url, headers={"X-Team": "platform"}, timeout=5))
        server = start()
        with client(server) as api:
            request = signed(release(tag="v9.9.9"), delivery_id="d-signed")
            assert post_webhook(api, request).status_code == 202
            wait_until(lambda: "d-signed" in dest.delivery_ids())
            got = dest.accepted[0]
            assert got.body == request.body  # the exact bytes GitHub sent
            assert signature.verify(got.body, signature_256=got.headers["x-hub-signature-256"],
                                    secrets=[DEST_SECRET.encode()]) == 0  # fmt: skip
            assert got.headers["x-github-event"] == "release"
            assert got.headers["x-github-delivery"] == "d-signed"
            assert got.headers["x-github-hook-id"] == request.headers["X-GitHub-Hook-ID"]
            assert got.headers["x-github-hook-installation-target-id"] == "186853002"
            assert got.headers["x-github-hook-installation-target-type"] == "repository"
            assert got.headers["content-type"] == "application/json"
            assert got.headers["x-team"] == "platform"
            assert "x-hub-signature" not in got.headers  # the SHA-1 signature of GitHub's secret is not passed on
            # A form-encoded delivery goes out as its JSON payload.
            payload = orjson.dumps(release(tag="v9.9.10"))
            form = signed(payload, delivery_id="d-form", form=True)
            assert post_webhook(api, form).status_code == 202
            wait_until(lambda: "d-form" in dest.delivery_ids())
            got = next(r for r in dest.accepted if r.headers["x-github-delivery"] == "d-form")
            assert got.body == payload
            assert got.headers["content-type"] == "application/json"
            wait_until(lambda: forwards(api, "d-form")[0]["status"] == "delivered")
            attempt = forwards(api, "d-form")[0]["attempt_log"][0]
            assert attempt["status_code"] == 200
            assert attempt["response_excerpt"] == "ok"


def _reserve_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def test_a_destination_down_for_a_while_then_up_receives_every_delivery(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    # Down: nothing listens on the port (connection refused); then it answers 503; then it is up.
    sock, port = _reserve_port()
    sock.close()
    routes_file.write_text(one_route(f"http://127.0.0.1:{port}/hook", timeout=2, retry=FAST_RETRY))
    server = start()
    ids = [f"d-down-{i}" for i in range(30)]
    with client(server) as api:
        for delivery_id in ids[:20]:
            assert (
                post_webhook(api, signed(release(release_id=i_of(delivery_id)), delivery_id=delivery_id)).status_code
                == 202
            )
        wait_until(lambda: all(f and f[0]["attempts"] >= 2 for f in (forwards(api, d) for d in ids[:20])), timeout=20)
        first = forwards(api, ids[0])[0]
        assert first["status"] in ("retry", "delivering", "pending")
        assert first["attempt_log"][0]["status_code"] is None
        assert first["attempt_log"][0]["error"]
        state = {"unavailable": 15}

        def flaky(_: Received) -> Answer:
            if state["unavailable"] > 0:
                state["unavailable"] -= 1
                return Answer(status=503, body=b"maintenance", headers={"Retry-After": "0"})
            return Answer()

        with Destination(flaky, port=port) as dest:
            for delivery_id in ids[20:]:
                assert (
                    post_webhook(
                        api, signed(release(release_id=i_of(delivery_id)), delivery_id=delivery_id)
                    ).status_code
                    == 202
                )
            wait_until(lambda: dest.delivery_ids() >= set(ids), timeout=30)
            wait_until(lambda: all(forwards(api, d)[0]["status"] == "delivered" for d in ids), timeout=10)
        statuses = {a["status_code"] for d in ids for a in forwards(api, d)[0]["attempt_log"]}
        assert {None, 503, 200} <= statuses


def i_of(delivery_id: str) -> int:
    return 1000 + int(delivery_id.rsplit("-", 1)[1])


def test_a_400_is_attempted_once_and_dead_lettered_then_replayed(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    state = {"status": 400}
    with Destination(lambda _r: Answer(status=state["status"], body=b'{"error": "unknown repo"}')) as dest:
        routes_file.write_text(one_route(dest.url, retry=FAST_RETRY))
        server = start()
        with client(server) as api:
            assert post_webhook(api, signed(release(), delivery_id="d-400")).status_code == 202
            wait_until(lambda: forwards(api, "d-400") and forwards(api, "d-400")[0]["status"] == "dead")
            job = forwards(api, "d-400")[0]
            assert job["attempts"] == 1
            assert len(job["attempt_log"]) == 1
            assert job["attempt_log"][0]["status_code"] == 400
            assert job["attempt_log"][0]["response_excerpt"] == '{"error": "unknown repo"}'
            time.sleep(0.3)  # several retry intervals of FAST_RETRY: a 400 is never retried
            assert len(dest.received) == 1
            dead = api.get("/api/dead-letters").json()["items"]
            assert [d["delivery_id"] for d in dead] == ["d-400"]
            ci = next(d for d in api.get("/api/destinations").json() if d["name"] == "ci")
            assert ci["dead"] == 1
            assert ci["last_error"] == "HTTP 400"
            # Replay: a dry run counts, the replay re-forwards and is recorded as a replay.
            dry = api.post("/api/replays", json={"dead_only": True, "dry_run": True})
            assert dry.json() == {"count": 1, "dry_run": True}
            assert httpx.post(f"{server.url}/api/replays", json={"dead_only": True}).status_code == 401
            assert api.post("/api/replays", json={}).status_code == 400
            state["status"] = 200
            assert api.post("/api/replays", json={"dead_only": True}).json() == {"count": 1, "dry_run": False}
            wait_until(lambda: len(dest.accepted) == 1)
            wait_until(lambda: [f["status"] for f in forwards(api, "d-400")] == ["replayed", "delivered"])
            replayed = forwards(api, "d-400")[1]
            assert replayed["replay"] is True
            assert replayed["generation"] == 1
            assert replayed["attempt_log"][0]["replay"] is True
            assert api.get("/api/dead-letters").json()["items"] == []
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'ghingest_forwards_total{destination="ci",outcome="dead"} 1.0' in metrics
            assert 'ghingest_forwards_total{destination="ci",outcome="delivered"} 1.0' in metrics
            assert 'ghingest_forward_dead_letters{destination="ci"} 0.0' in metrics


def test_a_slow_destination_does_not_hold_back_a_fast_one(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    slow = Destination(lambda _r: Answer(delay=6.0))
    fast = Destination()
    with slow, fast:
        routes_file.write_text(
            routes_toml(
                {
                    "slow": {"url": slow.url, "secret": DEST_SECRET, "timeout": 10, "concurrency": 2},
                    "fast": {"url": fast.url, "secret": DEST_SECRET, "timeout": 10, "concurrency": 4},
                },
                [{"name": "everything", "destinations": ["slow", "fast"]}],
            )
        )
        server = start()
        ids = [f"d-mixed-{i}" for i in range(40)]
        with client(server) as api:
            started = time.monotonic()
            for delivery_id in ids:
                request = signed(release(release_id=i_of(delivery_id)), delivery_id=delivery_id)
                assert post_webhook(api, request).status_code == 202
            wait_until(lambda: fast.delivery_ids() >= set(ids), timeout=10)
            elapsed = time.monotonic() - started
            assert elapsed < 5.0, f"the fast destination waited for the slow one ({elapsed:.1f} s)"
            assert len(slow.received) <= 2  # its two slots are busy for 6 s each
            depth = next(d for d in api.get("/api/destinations").json() if d["name"] == "slow")["queued"]
            assert depth >= len(ids) - 2


def test_route_file_errors_are_reported_and_the_running_routes_stay(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    with Destination() as first, Destination() as second:
        routes_file.write_text(one_route(first.url))
        server = start()
        with client(server) as api:
            runtime = server.runtime
            assert runtime.routes is not None
            bad = one_route(second.url).replace('destinations = ["ci"]', 'destinations = ["nowhere"]')
            routes_file.write_text(bad + "\n# changed\n")
            wait_until(lambda: runtime.routes is not None and runtime.routes.last_error is not None)
            assert (
                "route 'releases-to-ci': destinations: no destination is named 'nowhere'" in runtime.routes.last_error
            )
            assert DEST_SECRET not in runtime.routes.last_error
            assert post_webhook(api, signed(release(), delivery_id="d-kept")).status_code == 202
            wait_until(lambda: "d-kept" in first.delivery_ids())
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'ghingest_routes_reloads_total{result="error"} 1.0' in metrics
            routes_file.write_text(one_route(second.url) + "\n# fixed\n")
            wait_until(lambda: runtime.routes is not None and runtime.routes.last_error is None)
            assert post_webhook(api, signed(release(release_id=7), delivery_id="d-new")).status_code == 202
            wait_until(lambda: "d-new" in second.delivery_ids())
            assert "d-new" not in first.delivery_ids()


def test_an_invalid_route_file_stops_the_start_with_the_route_and_field_named(
    routes_file: Path, make_settings: Callable[..., Settings]
) -> None:
    from ghingest.app.routes_config import RoutesError

    routes_file.write_text(
        routes_toml(
            {"ci": {"url": "ftp://x", "secret": DEST_SECRET}},
            [{"name": "r1", "destinations": ["ci"], "when": "release.[[["}],
        )
    )
    with pytest.raises(RoutesError) as caught:
        Runtime.build(make_settings(routes_file=routes_file))
    message = str(caught.value)
    assert "destination 'ci': url: " in message
    assert DEST_SECRET not in message


def test_a_route_condition_and_template_shape_the_forward(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    template = readme_chat_template()  # the README's, as documented
    with Destination() as chat:
        routes_file.write_text(
            routes_toml(
                {"chat": {"url": chat.url, "secret": DEST_SECRET}},
                [
                    {
                        "name": "published-to-chat",
                        "events": ["release"],
                        "actions": ["published"],
                        "repositories": ["octo-org/*"],
                        "when": "release.prerelease == `false`",
                        "template": template,
                        "destinations": ["chat"],
                    }
                ],
            )
        )
        server = start()
        with client(server) as api:
            post_webhook(api, signed(release(action="created", release_id=1), delivery_id="d-created"))
            post_webhook(api, signed(release(release_id=2, repository_name="other/x"), delivery_id="d-other"))
            post_webhook(api, signed(release(release_id=3, tag="v3.0.0"), delivery_id="d-chat"))
            wait_until(lambda: "d-chat" in chat.delivery_ids())
            body = orjson.loads(chat.accepted[0].body)
            assert body["text"].startswith("New release v3.0.0 of octo-org/octo-repo: https://")
            assert forwards(api, "d-created") == []
            assert forwards(api, "d-other") == []
            assert len(chat.received) == 1
            # A tag that tries to add fields to the message: the body has the template's keys and no other.
            tag = 'v1", "admin": true, "x": "'
            post_webhook(api, signed(release(release_id=4, tag=tag), delivery_id="d-inject"))
            wait_until(lambda: "d-inject" in chat.delivery_ids())
            got = next(r for r in chat.accepted if r.headers["x-github-delivery"] == "d-inject")
            injected = orjson.loads(got.body)
            assert set(injected) == {"text"}
            assert injected["text"].startswith(f"New release {tag} of octo-org/octo-repo: https://")


def test_timeouts_and_429_are_retried_and_retry_after_is_honoured(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    answers = iter([Answer(delay=3.0), Answer(status=429, headers={"Retry-After": "1"})])

    def behaviour(_: Received) -> Answer:
        return next(answers, Answer())

    with Destination(behaviour) as dest:
        retry = {**FAST_RETRY, "max_delay": 5.0}  # Retry-After is honoured up to the policy's max_delay
        routes_file.write_text(one_route(dest.url, timeout=0.5, retry=retry))
        server = start()
        with client(server) as api:
            assert post_webhook(api, signed(release(), delivery_id="d-429")).status_code == 202
            wait_until(lambda: forwards(api, "d-429") and forwards(api, "d-429")[0]["status"] == "delivered")
            log = forwards(api, "d-429")[0]["attempt_log"]
            assert [(a["status_code"], a["outcome"]) for a in log] == [
                (None, "retry"),
                (429, "retry"),
                (200, "delivered"),
            ]
            assert log[0]["error"] == "timeout after 0.5 s"
            assert 400 <= log[0]["latency_ms"] < 2000
            # The backoff alone would retry after ~0.1 s; the destination asked for 1 s.
            gap = time_of(log[2]["started_at"]) - time_of(log[1]["started_at"])
            assert gap >= 0.95, gap
            assert len(dest.received) == 3


def time_of(value: str) -> float:
    from ghingest.core.time import parse_iso

    return parse_iso(value)


def test_a_malformed_retry_after_is_recorded_and_the_job_ends_by_its_policy(
    routes_file: Path, start: Callable[[], ThreadedServer]
) -> None:
    # One destination per value: '²' (str.isdigit() holds, float() refuses), a negative, an exponent, 5,000 digits,
    # a date far in the future. Each answers 503 with it: attempts are recorded and the policy dead-letters the job.
    values = ["²", "-1", "1e9", "9" * 5000, "Fri, 31 Dec 9999 23:59:59 GMT"]
    retry = {"base_delay": 0.05, "max_delay": 0.2, "max_attempts": 3, "max_age": 120.0}
    servers = [
        Destination(lambda _r, v=v: Answer(status=503, body=b"busy", headers={"Retry-After": v})) for v in values
    ]
    for server in servers:
        server.__enter__()
    try:
        routes_file.write_text(
            routes_toml(
                {f"ra{i}": {"url": s.url, "secret": DEST_SECRET, "retry": retry} for i, s in enumerate(servers)},
                [{"name": "everything", "destinations": [f"ra{i}" for i in range(len(values))]}],
            )
        )
        server = start()
        with client(server) as api:
            assert post_webhook(api, signed(release(), delivery_id="d-retry-after")).status_code == 202
            wait_until(
                lambda: (
                    len(forwards(api, "d-retry-after")) == len(values)
                    and all(f["status"] == "dead" for f in forwards(api, "d-retry-after"))
                ),
                timeout=20,
            )
            for job in forwards(api, "d-retry-after"):
                assert job["attempts"] == 3, job["destination"]
                log = [(a["status_code"], a["outcome"], a["error"]) for a in job["attempt_log"]]
                assert log == [(503, "retry", None), (503, "retry", None), (503, "dead", None)], job["destination"]
        assert [len(s.received) for s in servers] == [3] * len(values)
    finally:
        for s in servers:
            s.__exit__(None, None, None)


def test_https_destinations_with_a_ca_bundle_and_through_a_connect_proxy(
    routes_file: Path, start: Callable[[], ThreadedServer], tmp_path: Path
) -> None:
    tls = certificates(tmp_path)
    with Destination(tls=tls) as dest, Proxy() as proxy:
        assert dest.url.startswith("https://127.0.0.1:")
        destinations = {
            "trusted": {"url": dest.url, "secret": DEST_SECRET, "ca_bundle": str(tls.ca_bundle)},
            "untrusted": {"url": dest.url, "secret": DEST_SECRET, "retry": FAST_RETRY},  # the system's store
            "proxied": {"url": dest.url, "secret": DEST_SECRET, "ca_bundle": str(tls.ca_bundle), "proxy": proxy.url},
        }
        routes = [{"name": "everything", "destinations": list(destinations)}]
        routes_file.write_text(routes_toml(destinations, routes))
        server = start()
        ids = [f"d-tls-{i}" for i in range(5)]
        with client(server) as api:
            for delivery_id in ids:
                request = signed(release(release_id=i_of(delivery_id)), delivery_id=delivery_id)
                assert post_webhook(api, request).status_code == 202

            def status(delivery_id: str, destination: str) -> dict[str, Any]:
                return next(f for f in forwards(api, delivery_id) if f["destination"] == destination)

            def settled() -> bool:
                return all(
                    len(forwards(api, d)) == 3
                    and status(d, "trusted")["status"] == "delivered"
                    and status(d, "proxied")["status"] == "delivered"
                    and status(d, "untrusted")["attempts"] >= 2
                    for d in ids
                )

            wait_until(settled, timeout=20)
            assert len(dest.accepted) == 2 * len(ids)  # trusted and proxied; nothing reached it untrusted
            assert 1 <= proxy.tunnels <= 4  # through CONNECT tunnels, kept alive (at most `concurrency` of them)
            assert proxy.relayed == 0
            assert all(head.startswith(b"CONNECT 127.0.0.1:%d " % dest.port) for head in proxy.heads)
            untrusted = status(ids[0], "untrusted")
            assert untrusted["status"] in ("retry", "delivering")
            attempt = untrusted["attempt_log"][0]
            assert attempt["status_code"] is None
            assert attempt["outcome"] == "retry"
            assert attempt["error"].startswith(f"TlsFailed: TLS with 127.0.0.1:{dest.port}: ")
            assert "unable to get local issuer certificate" in attempt["error"]
            # Trusting the CA (a reload) lets the retries through.
            destinations["untrusted"]["ca_bundle"] = str(tls.ca_bundle)
            routes_file.write_text(routes_toml(destinations, routes) + "\n# trusted now\n")
            wait_until(lambda: all(status(d, "untrusted")["status"] == "delivered" for d in ids), timeout=20)
            assert len(dest.accepted) == 3 * len(ids)


TEMPLATE = '{"text": {{ "Release " ~ payload.release.tag_name }}, "size": {{ payload.release.body | length }}}'


def test_large_forwards_are_built_in_the_worker_process_templated_or_not(
    make_settings: Callable[..., Settings], routes_file: Path
) -> None:
    """A body over GHINGEST_OFFLOAD_BYTES is parsed, rendered and signed away from the event loop, and arrives
    exactly as a small one would."""
    notes = "x" * 200_000
    with Destination(secret=DEST_SECRET) as raw, Destination(secret=DEST_SECRET) as chat:
        routes_file.write_text(
            routes_toml(
                {"raw": {"url": raw.url, "secret": DEST_SECRET}, "chat": {"url": chat.url, "secret": DEST_SECRET}},
                [
                    {"name": "as-is", "events": ["release"], "destinations": ["raw"]},
                    {"name": "templated", "events": ["release"], "destinations": ["chat"], "template": TEMPLATE},
                ],
            )
        )  # fmt: skip
        settings = make_settings(routes_file=routes_file, forward_poll_interval=0.05, offload_bytes=1024)
        with ThreadedServer(Runtime.build(settings)) as server, client(server) as api:
            request = signed(release(tag="v9.9.9", body=notes), delivery_id="large-forward")
            assert len(request.body) > 1024
            assert post_webhook(api, request).status_code == 202
            wait_until(lambda: raw.delivery_ids() == {"large-forward"} and chat.delivery_ids() == {"large-forward"})
    assert raw.accepted[0].body == request.body  # signature verified by the destination (secret=...)
    assert orjson.loads(chat.accepted[0].body) == {"text": "Release v9.9.9", "size": len(notes)}
