"""The product as a user runs it: `ghingest serve` and `ghingest send` as processes, read back over HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import httpx
import orjson
import pytest

from ghingest.app.samples import release_payload
from tests.conftest import SECRET, TOKEN, wait_until
from tests.e2e.conftest import GHINGEST, ServeProcess

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_send_a_sample_release_and_read_it_back(serve: ServeProcess) -> None:
    serve.start()
    result = serve.cli("send", "--url", f"{serve.url}/webhooks/github", "--secret", SECRET, "--release-id", "4711",
                       "--tag", "v9.9.9", "--delivery-id", "e2e-1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("202")
    release = wait_until(
        lambda: (r := httpx.get(f"{serve.url}/api/releases/4711", headers=AUTH)).is_success and r.json()
    )
    assert release["tag"] == "v9.9.9"
    assert release["state"] == "published"
    assert [h["delivery_id"] for h in release["history"]] == ["e2e-1"]
    listed = httpx.get(f"{serve.url}/api/releases", headers=AUTH, params={"repo": "octo-org/octo-repo"}).json()
    assert [r["id"] for r in listed["items"]] == [4711]
    events = httpx.get(f"{serve.url}/api/events", headers=AUTH, params={"event": "release"}).json()
    assert events["items"][0]["delivery_id"] == "e2e-1"
    assert events["items"][0]["action"] == "published"
    delivery = httpx.get(f"{serve.url}/api/deliveries/e2e-1", headers=AUTH).json()
    assert delivery["status"] == "processed"


def test_send_a_form_encoded_payload_file(serve: ServeProcess, tmp_path: Path) -> None:
    serve.start()
    payload = tmp_path / "payload.json"
    payload.write_bytes(orjson.dumps(release_payload(release_id=31, tag="v3.1.0")))
    result = serve.cli("send", "--url", f"{serve.url}/webhooks/github", "--secret", SECRET, "--file", str(payload),
                       "--form")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("202"), result.stdout
    wait_until(lambda: httpx.get(f"{serve.url}/api/releases/31", headers=AUTH).status_code == 200)


def test_the_read_api_requires_a_token(serve: ServeProcess) -> None:
    serve.start()
    for path in ("/api/releases", "/api/events", "/api/releases/1", "/api/deliveries/x"):
        response = httpx.get(f"{serve.url}{path}")
        assert response.status_code == 401, path
        assert response.json()["error"] == "unauthorized"
        assert httpx.get(f"{serve.url}{path}", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert httpx.get(f"{serve.url}/healthz").status_code == 200


def test_logs_carry_one_line_per_delivery_and_never_a_secret_or_a_body(serve: ServeProcess) -> None:
    serve.start()
    marker = "body-marker-that-must-not-be-logged"
    body = orjson.dumps(release_payload(release_id=5, body=marker))
    from tests.conftest import signed

    request = signed(body, delivery_id="log-1")
    assert httpx.post(f"{serve.url}/webhooks/github", content=request.body, headers=request.headers).status_code == 202
    bad = signed(body, delivery_id="log-2", secret="a-wrong-secret-value")
    assert httpx.post(f"{serve.url}/webhooks/github", content=bad.body, headers=bad.headers).status_code == 401
    wait_until(lambda: any(line.get("delivery_id") == "log-1" for line in _json_lines(serve.output())))
    serve.stop()
    output = serve.output()
    lines = _json_lines(output)
    processed = [line for line in lines if line.get("delivery_id") == "log-1"]
    assert len(processed) == 1
    assert {"github_event", "action", "outcome", "latency_ms"} <= set(processed[0])
    assert any(line.get("outcome") == "invalid_signature" for line in lines)
    for forbidden in (marker, SECRET, TOKEN, "a-wrong-secret-value"):
        assert forbidden not in output


def _json_lines(output: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_first_start_generates_and_prints_credentials_once(tmp_path: Path) -> None:
    process = ServeProcess(tmp_path, GHINGEST_WEBHOOK_SECRETS="", GHINGEST_API_TOKENS="")
    del process.env["GHINGEST_WEBHOOK_SECRETS"], process.env["GHINGEST_API_TOKENS"]
    try:
        process.start()
        secret = (tmp_path / "data" / "webhook-secret").read_text().strip()
        token = (tmp_path / "data" / "api-token").read_text().strip()
        assert (tmp_path / "data" / "webhook-secret").stat().st_mode & 0o777 == 0o600
        wait_until(lambda: secret in process.output() and token in process.output())
        assert f"{process.url}/webhooks/github" in process.output()
        sent = process.cli("send", "--url", f"{process.url}/webhooks/github")  # uses the generated secret
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202"), sent.stdout
        process.stop()
        process.start()  # a second start prints neither again
        second = process.logs[-1].read_text()
        assert secret not in second
        assert token not in second
    finally:
        process.stop()


def test_reprocess_repairs_history_from_the_raw_deliveries(serve: ServeProcess) -> None:
    serve.start()
    from tests.conftest import signed

    for delivery_id, action in (("rp-1", "created"), ("rp-2", "published")):
        request = signed(release_payload(action=action, release_id=8, tag="v8.0.0"), delivery_id=delivery_id)
        httpx.post(f"{serve.url}/webhooks/github", content=request.body, headers=request.headers)
    wait_until(lambda: len(httpx.get(f"{serve.url}/api/releases/8", headers=AUTH).json().get("history", [])) == 2)
    serve.stop()
    database = serve.workdir / "data" / "ghingest.db"
    with sqlite3.connect(database) as conn:  # what an older, buggy parser might have stored
        conn.execute("UPDATE release_changes SET content = json_set(content, '$.tag', 'garbage')")
        conn.execute("UPDATE releases SET tag = 'garbage'")
        conn.execute("DELETE FROM events")
    result = serve.cli("reprocess", "--since", "2000-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "reprocessed 2 deliveries: 2 processed, 0 failed again" in result.stderr
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT tag FROM releases WHERE id = 8").fetchone() == ("v8.0.0",)
        assert conn.execute("SELECT count(*) FROM events WHERE status = 'processed'").fetchone() == (2,)
    nothing = serve.cli("reprocess", "--delivery", "no-such-delivery")
    assert nothing.returncode == 3  # nothing matched (ADR 0028)
    assert "no delivery matched" in nothing.stderr
    usage = serve.cli("reprocess")
    assert usage.returncode == 2
    assert "--delivery" in usage.stderr


def test_invalid_configuration_names_the_setting(serve: ServeProcess) -> None:
    serve.env["GHINGEST_PORT"] = "not-a-port"
    result = serve.cli("serve")
    assert result.returncode == 2
    assert "GHINGEST_PORT" in result.stderr


def test_worker_process_processes_what_was_recorded(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from ghingest.adapters.sqlite.database import SqliteDatabase
    from ghingest.core.delivery import ContentKind, IncomingDelivery
    from tests.e2e.conftest import GHINGEST

    database = SqliteDatabase(f"sqlite:///{tmp_path / 'data' / 'ghingest.db'}")
    database.upgrade()
    asyncio.run(database.start())

    async def record() -> None:
        for i in range(20):
            body = orjson.dumps(release_payload(release_id=500 + i))
            delivery = IncomingDelivery(f"w-{i}", "release", None, ContentKind.JSON, {}, body, 0)
            await database.inbox.append(delivery, received_at=time.time())

    asyncio.run(record())
    asyncio.run(database.close())
    process = ServeProcess(tmp_path)
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([GHINGEST, "worker"], cwd=tmp_path, env=process.env, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def processed() -> bool:
            with sqlite3.connect(tmp_path / "data" / "ghingest.db") as conn:
                return conn.execute("SELECT count(*) FROM releases").fetchone()[0] == 20

        wait_until(processed, timeout=30)
    finally:
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=15) == 0


def test_serve_on_a_port_already_taken_says_so_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")}, "GHINGEST_PORT": str(port)}
        done = subprocess.run([GHINGEST, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in " ".join(done.stderr.split())
    assert not (tmp_path / "data").exists()  # no database, no secret: nothing was started
