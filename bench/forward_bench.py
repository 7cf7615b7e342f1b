"""Forwarding benchmark (issue 4), loopback only, bounded in time.

Starts a fast local destination (bench/forward_destination.py) and `ghingest serve` with a route file that sends
every release to it, both as subprocesses on 127.0.0.1. Then:

1. latency: open-loop POSTs of signed release deliveries at 200/s for DURATION s. For each delivery, the time from
   receipt to its first forward attempt is read from the database (forward_jobs.first_attempt_at - received_at,
   both stamped by ghingest); the time from the POST to its arrival at the destination is measured outside.
2. throughput: one `POST /api/replays` re-forwards every delivery recorded so far (plus a burst recorded for the
   purpose); forwards/s = replays / time until the destination has received them all.

Prints one JSON document per phase and a two-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from ghingest.app.samples import release_payload
from ghingest.app.sender import hookshot_request
from stats import paced, percentile

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-forward-secret-0123"
TOKEN = "bench-forward-token-0123"
DEST_SECRET = "bench-destination-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request_for(run: str, n: int) -> tuple[str, dict[str, str], bytes]:
    delivery_id = f"{run}-{n}"
    payload = orjson.dumps(release_payload(release_id=1_000_000 + n, tag=f"v{n}", repository_name=f"acme/r{n % 50}"))
    signed = hookshot_request(payload, event="release", secret=SECRET, delivery_id=delivery_id)
    return delivery_id, signed.headers, signed.body


async def open_loop(base: str, run: str, rate: float, duration: float) -> dict[str, float]:
    """POST at `rate`/s; request i is due at start + i/rate whatever happened before. Returns id -> due time."""
    count = int(rate * duration)
    requests = [request_for(run, n) for n in range(count)]
    sent: dict[str, float] = {}
    failures = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def post(n: int, due: float) -> None:
            nonlocal failures
            delivery_id, headers, body = requests[n]
            sent[delivery_id] = due
            response = await client.post("/webhooks/github", content=body, headers=headers)
            if response.status_code != 202:
                failures += 1

        await paced(count, rate, post, clock=time.time)  # due times compared with the destination's arrival times
    if failures:
        print(f"warning: {failures} POSTs were not answered 202", file=sys.stderr)
    return sent


async def burst(base: str, run: str, count: int, concurrency: int = 32) -> None:
    requests = [request_for(run, n) for n in range(count)]
    queue: asyncio.Queue[tuple[str, dict[str, str], bytes]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def worker() -> None:
            while not queue.empty():
                _, headers, body = queue.get_nowait()
                await client.post("/webhooks/github", content=body, headers=headers)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def wait_for(predicate: object, limit: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_FORWARD_SECONDS", "15")))
    parser.add_argument("--burst", type=int, default=int(os.environ.get("BENCH_FORWARD_BURST", "6000")))
    parser.add_argument("--concurrency", type=int, default=32, help="The destination's concurrency limit.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ghingest-fwd-bench."))
    dest_port, port = free_port(), free_port()
    dest_url = f"http://127.0.0.1:{dest_port}"
    routes = work / "routes.toml"
    routes.write_text(
        f'[[destinations]]\nname = "fast"\nurl = "{dest_url}/hook"\nsecret = "{DEST_SECRET}"\n'
        f"timeout = 5\nconcurrency = {args.concurrency}\n\n"
        '[[routes]]\nname = "releases"\nevents = ["release"]\ndestinations = ["fast"]\n'
    )
    database = work / "forward.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")},
        "GHINGEST_DATABASE_URL": f"sqlite:///{database}",
        "GHINGEST_DATA_DIR": str(work / "data"),
        "GHINGEST_HOST": "127.0.0.1",
        "GHINGEST_PORT": str(port),
        "GHINGEST_WEBHOOK_SECRETS": SECRET,
        "GHINGEST_API_TOKENS": TOKEN,
        "GHINGEST_ROUTES_FILE": str(routes),
        "GHINGEST_LOG_LEVEL": "warning",
    }
    python = sys.executable
    destination = subprocess.Popen([python, str(ROOT / "bench" / "forward_destination.py"), str(dest_port)])
    server = subprocess.Popen(
        [str(Path(python).with_name("ghingest")), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{dest_url}/stats", destination)
        wait_ready(f"{base}/readyz", server)

        def received() -> int:
            count: int = httpx.get(f"{dest_url}/stats", timeout=5).json()["received"]
            return count

        # Warm-up: a few deliveries through the whole path.
        asyncio.run(open_loop(base, "warm", 50, 1))
        wait_for(lambda: received() >= 50, 20)

        # 1. latency at a fixed rate.
        run = f"lat{int(time.time())}"
        sent = asyncio.run(open_loop(base, run, args.rate, args.duration))
        complete = wait_for(lambda: received() >= 50 + len(sent), 60)
        arrivals = httpx.get(f"{dest_url}/arrivals", timeout=30).json()
        post_to_arrival = [(arrivals[d] - due) * 1000 for d, due in sent.items() if d in arrivals]
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT j.first_attempt_at - j.received_at, j.created_at - j.received_at,"
                " j.first_attempt_at - j.created_at FROM forward_jobs j WHERE j.delivery_id LIKE ?"
                " AND j.generation = 0 AND j.first_attempt_at IS NOT NULL",
                (run + "-%",),
            ).fetchall()
        receipt_to_attempt = [r[0] * 1000 for r in rows]
        receipt_to_job = [r[1] * 1000 for r in rows]  # the worker: received -> processed, job committed
        job_to_attempt = [r[2] * 1000 for r in rows]  # the forwarder: job committed -> first attempt
        latency = {
            "phase": "latency",
            "rate_per_s": args.rate,
            "duration_s": args.duration,
            "deliveries": len(sent),
            "forwarded": len(post_to_arrival),
            "all_forwarded": complete,
            "receipt_to_first_attempt_ms": {
                "p50": round(percentile(receipt_to_attempt, 50), 2),
                "p99": round(percentile(receipt_to_attempt, 99), 2),
                "max": round(max(receipt_to_attempt, default=float("nan")), 2),
            },
            "receipt_to_job_created_ms": {
                "p50": round(percentile(receipt_to_job, 50), 2),
                "p99": round(percentile(receipt_to_job, 99), 2),
            },
            "job_created_to_first_attempt_ms": {
                "p50": round(percentile(job_to_attempt, 50), 2),
                "p99": round(percentile(job_to_attempt, 99), 2),
            },
            "post_to_arrival_ms": {
                "p50": round(percentile(post_to_arrival, 50), 2),
                "p99": round(percentile(post_to_arrival, 99), 2),
            },
        }
        print(json.dumps(latency))

        # 2. throughput: record a burst (forwarded as it goes), then replay everything in one request.
        asyncio.run(burst(base, f"burst{int(time.time())}", args.burst))
        before_burst_done = received()
        wait_for(lambda: received() >= 50 + len(sent) + args.burst, 120)
        baseline = received()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        replay = httpx.post(f"{base}/api/replays", json={"event": "release"}, headers=headers, timeout=120)
        replayed = int(replay.json()["count"])
        started = time.monotonic()
        done = wait_for(lambda: received() >= baseline + replayed, 120, interval=0.01)
        elapsed = time.monotonic() - started
        throughput = {
            "phase": "throughput",
            "replayed": replayed,
            "delivered": received() - baseline,
            "complete": done,
            "seconds": round(elapsed, 3),
            "forwards_per_s": round((received() - baseline) / elapsed, 1),
            "destination_concurrency": args.concurrency,
            "received_before_burst_drained": before_burst_done,
        }
        print(json.dumps(throughput))
        p99 = latency["receipt_to_first_attempt_ms"]["p99"]  # type: ignore[index]
        p50 = latency["receipt_to_first_attempt_ms"]["p50"]  # type: ignore[index]
        print(f"forwards/s (replay of {replayed} to a fast local destination): {throughput['forwards_per_s']}"
              f"   target >= 1000")  # fmt: skip
        print(f"receipt -> first forward attempt at {args.rate:g} deliveries/s: p50 {p50} ms, p99 {p99} ms"
              f"   target p99 < 100 ms")  # fmt: skip
        return 0
    finally:
        stop(server)
        stop(destination)


if __name__ == "__main__":
    sys.exit(main())
