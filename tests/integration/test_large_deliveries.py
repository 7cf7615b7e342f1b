"""A backlog of large deliveries never makes the event loop that answers GitHub do their CPU-heavy work.

Parsing a 17 MiB payload of six million small objects takes over a second and holds the GIL throughout: on the
event loop it would hold every other acknowledgement back that long. The receiver verifies large bodies, and the
worker processes them, in a worker process (`ghingest.app.offload`). A probe on the server's event loop measures
how much CPU time the loop's thread spent between two of its turns: the wall time between turns depends on how
busy the machine is; the CPU time the loop spends on its own does not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import uuid

import httpx
import orjson

from tests.conftest import ThreadedServer, post_webhook, release, signed, sqlite_path, wait_until

BIG_DELIVERIES = 2


def big_release(release_id: int) -> bytes:
    payload = release(release_id=release_id)
    payload["padding"] = [{}] * 6_000_000
    return orjson.dumps(payload)


async def probe(turns: list[tuple[float, float]], stop: threading.Event) -> None:
    """Record (wall seconds, CPU seconds of this thread) between consecutive turns of the event loop."""
    while not stop.is_set():
        wall, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(0.005)
        turns.append((time.perf_counter() - wall, time.thread_time() - cpu))


def test_large_deliveries_are_verified_and_processed_off_the_event_loop(server: ThreadedServer) -> None:
    bodies = [big_release(1000 + n) for n in range(BIG_DELIVERIES)]
    assert all(len(body) > 15 * 1024 * 1024 for body in bodies)
    big_ids = [str(uuid.uuid4()) for _ in bodies]

    def processed() -> bool:
        with sqlite3.connect(sqlite_path(server.runtime)) as conn:
            placeholders = ", ".join("?" * len(big_ids))
            sql = f"SELECT count(*) FROM events WHERE status = 'processed' AND delivery_id IN ({placeholders})"  # noqa: S608
            return bool(conn.execute(sql, big_ids).fetchone()[0] == len(big_ids))

    loop = server.server.servers[0].get_loop()
    turns: list[tuple[float, float]] = []
    stop = threading.Event()
    probing = asyncio.run_coroutine_threadsafe(probe(turns, stop), loop)
    acks: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for delivery_id, body in zip(big_ids, bodies, strict=True):
                assert post_webhook(client, signed(body, delivery_id=delivery_id)).status_code == 202
            deadline = time.monotonic() + 120
            while not processed():  # meanwhile, small deliveries are acknowledged as usual
                assert time.monotonic() < deadline, "the large deliveries were never processed"
                started = time.perf_counter()
                assert post_webhook(client, signed(release(release_id=2))).status_code == 202
                acks.append(time.perf_counter() - started)
                time.sleep(0.01)
    finally:
        stop.set()
        probing.result(timeout=10)
    wait_until(processed)
    busiest = max(cpu for _wall, cpu in turns)
    print(f"busiest loop turn {busiest * 1000:.0f} ms CPU; slowest ack {max(acks, default=0) * 1000:.0f} ms")
    assert len(turns) > 50
    assert busiest < 0.15, f"the event loop spent {busiest * 1000:.0f} ms of CPU in one turn"
