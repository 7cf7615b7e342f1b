"""`ghingest receiver` as a process: it records deliveries and serves health and metrics, nothing else; a separate
`ghingest worker` on the same database processes what it recorded."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TOKEN, post_webhook, release, signed, wait_until
from tests.e2e.conftest import GHINGEST, ServeProcess

pytestmark = pytest.mark.slow


def _status(database: Path, delivery_id: str) -> str | None:
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT s.status FROM deliveries d JOIN delivery_states s ON s.seq = d.seq WHERE d.delivery_id = ?",
            (delivery_id,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_the_receiver_acknowledges_deliveries_and_serves_no_read_api_and_a_worker_processes_them(
    tmp_path: Path,
) -> None:
    receiver = ServeProcess(tmp_path, command="receiver").start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=receiver.url, timeout=10) as client:
            assert post_webhook(client, signed(release(release_id=77), delivery_id="rx-1")).status_code == 202
            assert client.get("/readyz").status_code == 200
            assert client.get("/healthz").status_code == 200
            assert 'outcome="accepted"' in client.get("/metrics").text
            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert client.get("/api/releases", headers=auth).status_code == 404
            assert client.get("/api/deliveries/rx-1", headers=auth).status_code == 404
            assert client.get("/").status_code == 404  # no dashboard either
            assert client.post("/api/replays", headers=auth, json={"dead_only": True}).status_code == 404
        database = tmp_path / "data" / "ghingest.db"
        assert _status(database, "rx-1") == "received"  # recorded durably, and no worker in this process
        with (tmp_path / "worker.log").open("wb") as sink:
            worker = subprocess.Popen([GHINGEST, "worker"], cwd=tmp_path, env=receiver.env, stdout=sink, stderr=sink)
        wait_until(lambda: _status(database, "rx-1") == "processed", timeout=30, interval=0.1)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=15)
        receiver.stop()
    assert "ghingest receiver is starting" in receiver.output()
