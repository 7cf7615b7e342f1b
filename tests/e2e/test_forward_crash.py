"""No forward is lost to a crash: kill -9 `ghingest serve` while forwards are pending or in flight, restart, and
every matched delivery still reaches its destination."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, post_webhook, release, signed, wait_until
from tests.destinations import Answer, Destination, Received, routes_toml
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow


def count(database: Path, sql: str) -> int:
    with sqlite3.connect(database) as conn:
        value: int = conn.execute(sql).fetchone()[0]
        return value


def test_forwards_pending_at_kill_9_are_delivered_after_restart(serve: ServeProcess, tmp_path: Path) -> None:
    state = {"up": False}

    def behaviour(_: Received) -> Answer:
        # Before the crash: slow and failing, so that jobs are both waiting for a retry and in flight.
        return Answer() if state["up"] else Answer(status=503, delay=0.5)

    with Destination(behaviour, secret="e2e-destination-secret") as dest:
        routes = tmp_path / "routes.toml"
        retry = {"base_delay": 0.2, "max_delay": 0.5, "max_attempts": 1000, "max_age": 600.0}
        routes.write_text(
            routes_toml(
                {"ci": {"url": dest.url, "secret": "e2e-destination-secret", "concurrency": 4, "retry": retry}},
                [{"name": "releases", "events": ["release"], "destinations": ["ci"]}],
            )
        )
        serve.env["GHINGEST_ROUTES_FILE"] = str(routes)
        serve.env["GHINGEST_FORWARD_POLL_INTERVAL"] = "0.1"
        serve.env["GHINGEST_WORKER_LEASE_SECONDS"] = "2"
        serve.start()
        ids = [f"fwd-crash-{n}" for n in range(60)]
        with httpx.Client(base_url=serve.url, timeout=5) as client:
            for n, delivery_id in enumerate(ids):
                request = signed(release(release_id=5000 + n, tag=f"v{n}"), delivery_id=delivery_id)
                assert post_webhook(client, request).status_code == 202
        database = serve.workdir / "data" / "ghingest.db"
        wait_until(lambda: count(database, "SELECT count(*) FROM forward_jobs") == len(ids), timeout=20)
        wait_until(lambda: len(dest.received) >= 8, timeout=20)  # attempts have been made and are being made
        serve.kill()
        assert count(database, "SELECT count(*) FROM forward_jobs WHERE status = 'delivered'") == 0
        in_flight = count(database, "SELECT count(*) FROM forward_jobs WHERE status = 'delivering'")

        state["up"] = True
        serve.start()
        wait_until(lambda: dest.delivery_ids() >= set(ids), timeout=60)
        wait_until(
            lambda: count(database, "SELECT count(*) FROM forward_jobs WHERE status = 'delivered'") == len(ids),
            timeout=20,
        )
        assert count(database, "SELECT count(*) FROM forward_attempts WHERE outcome = 'retry'") >= 1
        assert in_flight >= 1  # jobs leased by the killed process were delivered too (released at start)


def test_replay_from_the_cli_with_a_dry_run_count(serve: ServeProcess, tmp_path: Path) -> None:
    state = {"status": 400}
    with Destination(lambda _r: Answer(status=state["status"])) as dest:
        routes = tmp_path / "routes.toml"
        routes.write_text(
            routes_toml(
                {"ci": {"url": dest.url, "secret": "e2e-destination-secret"}, "audit": {"url": dest.url + "?audit",
                 "secret": "audit-secret"}},
                [{"name": "releases", "events": ["release"], "destinations": ["ci"]}],
            )
        )  # fmt: skip
        serve.env["GHINGEST_ROUTES_FILE"] = str(routes)
        serve.env["GHINGEST_FORWARD_POLL_INTERVAL"] = "0.1"
        serve.start()
        ids = [f"replay-{n}" for n in range(3)]
        with httpx.Client(base_url=serve.url, timeout=5) as client:
            for n, delivery_id in enumerate(ids):
                assert (
                    post_webhook(client, signed(release(release_id=n + 1), delivery_id=delivery_id)).status_code == 202
                )
        database = serve.workdir / "data" / "ghingest.db"
        wait_until(lambda: count(database, "SELECT count(*) FROM forward_jobs WHERE status = 'dead'") == 3)
        assert len(dest.received) == 3  # one attempt each: a 400 is not retried

        usage = serve.cli("replay")
        assert usage.returncode == 2
        assert "choose what to replay" in usage.stderr
        dry = serve.cli("replay", "--dead-only", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines()[0] == "3 forwards would be replayed"
        assert all(delivery_id in dry.stdout for delivery_id in ids)  # the first deliveries
        nothing = serve.cli("replay", "--dead-only", "--destination", "audit", "--dry-run")
        assert nothing.returncode == 3  # nothing matched, as without --dry-run (ADR 0028)
        assert serve.cli("replay", "--dead-only", "--to", "nowhere").returncode == 2
        state["status"] = 200
        done = serve.cli("replay", "--dead-only", "--destination", "ci")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("replayed 3 forwards")
        wait_until(lambda: dest.delivery_ids() >= set(ids), timeout=20)
        one = serve.cli("replay", "--delivery", "replay-1", "--to", "audit")
        assert one.returncode == 0, one.stderr
        wait_until(lambda: count(database, "SELECT count(*) FROM forward_attempts WHERE replay = 1") == 4)
        assert count(database, "SELECT count(*) FROM forward_jobs WHERE status = 'dead'") == 0
        serve.stop()
        output = serve.output()
        assert "forward.failed" in output  # attempts that failed are logged...
        for secret in ("e2e-destination-secret", "audit-secret", '"tag_name"'):
            assert secret not in output  # ...without a secret or a body


def test_serve_refuses_to_start_with_an_invalid_route_file(serve: ServeProcess, tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    routes.write_text(
        routes_toml(
            {"ci": {"url": "https://ci.internal/hook", "secret_env": "UNSET_HOOK_SECRET"}},
            [{"name": "releases", "events": ["release"], "destinations": ["ci", "chat"]}],
        )
    )
    serve.env["GHINGEST_ROUTES_FILE"] = str(routes)
    result = serve.cli("serve")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert "destination 'ci': secret_env: environment variable UNSET_HOOK_SECRET is not set" in message
    assert "route 'releases': destinations: no destination is named 'chat'" in message


def test_sighup_reloads_the_route_file(serve: ServeProcess, tmp_path: Path) -> None:
    routes = tmp_path / "routes.toml"
    one = {"ci": {"url": "http://127.0.0.1:9/hook", "secret": "ci-secret-value"}}
    routes.write_text(routes_toml(one, [{"name": "r", "destinations": ["ci"]}]))
    serve.env["GHINGEST_ROUTES_FILE"] = str(routes)
    serve.env["GHINGEST_ROUTES_RELOAD_INTERVAL"] = "3600"  # only the signal reloads here
    serve.start()

    def names() -> set[str]:
        answer = httpx.get(f"{serve.url}/api/destinations", headers={"Authorization": f"Bearer {TOKEN}"})
        return {d["name"] for d in answer.json() if d["configured"]}

    assert names() == {"ci"}
    two = {**one, "chat": {"url": "http://127.0.0.1:9/chat", "secret": "chat-secret-value"}}
    routes.write_text(routes_toml(two, [{"name": "r", "destinations": ["ci", "chat"]}]))
    assert serve.process is not None
    serve.process.send_signal(signal.SIGHUP)
    wait_until(lambda: names() == {"ci", "chat"})
    assert serve.process.poll() is None
