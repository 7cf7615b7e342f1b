"""Nothing acknowledged is ever lost: kill -9 the server under concurrent load, restart, count."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import httpx
import pytest

from tests.conftest import post_webhook, release, signed, wait_until
from tests.e2e.conftest import ServeProcess

pytestmark = pytest.mark.slow


def test_every_acknowledged_delivery_survives_kill_9_and_is_processed_once(serve: ServeProcess) -> None:
    serve.env["GHINGEST_WORKER_LEASE_SECONDS"] = "2"  # claims of the killed process return after 2 s
    serve.start()
    acknowledged: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=serve.url, timeout=5) as client:
            n = 0
            while not stop.is_set():
                delivery_id = f"crash-{worker}-{n}-{uuid.uuid4().hex[:8]}"
                n += 1
                request = signed(release(release_id=1000 + (n % 50), tag=f"v{n}"), delivery_id=delivery_id)
                try:
                    response = post_webhook(client, request)
                except httpx.TransportError:
                    continue  # the server is gone; the delivery was not acknowledged
                if response.status_code == 202:
                    with lock:
                        acknowledged.add(delivery_id)
                        if len(acknowledged) >= 400:
                            enough.set()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60), "the load never reached 400 acknowledged deliveries"
    serve.kill()  # mid-stream: requests are in flight and the worker is behind
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    database = serve.workdir / "data" / "ghingest.db"
    with sqlite3.connect(database) as conn:
        stored_at_crash = {row[0] for row in conn.execute("SELECT delivery_id FROM deliveries")}
        pending_at_crash = conn.execute("SELECT count(*) FROM delivery_states WHERE status = 'received'").fetchone()[0]
    assert acknowledged <= stored_at_crash, f"{len(acknowledged - stored_at_crash)} acknowledged deliveries lost"

    serve.start()  # restart: what was accepted but not processed is processed now

    def all_processed() -> bool:
        with sqlite3.connect(database) as conn:
            return conn.execute("SELECT count(*) FROM delivery_states WHERE status != 'processed'").fetchone()[0] == 0

    wait_until(all_processed, timeout=60, interval=0.1)
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT delivery_id, count(*) FROM deliveries GROUP BY delivery_id").fetchall()
        events = {row[0] for row in conn.execute("SELECT delivery_id FROM events WHERE status = 'processed'")}
        history = {row[0] for row in conn.execute("SELECT delivery_id FROM release_changes")}
    assert all(count == 1 for _, count in rows)
    stored = {delivery_id for delivery_id, _ in rows}
    assert acknowledged <= stored
    assert acknowledged <= events, "an acknowledged delivery was never processed into an event"
    assert acknowledged <= history, "an acknowledged release delivery is missing from its release's history"
    print(f"acknowledged={len(acknowledged)} stored={len(stored)} pending at crash={pending_at_crash}")
