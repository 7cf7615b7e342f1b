"""Open-loop load at a fixed rate: ack latency without coordinated omission, and receive-to-visible latency.

Request i is due at `start + i / rate`, whether or not earlier requests have been answered; its latency is
measured from that due time, so a stalled server is charged for every request it delays (wrk is closed-loop:
it would wait, and under-report the tail). Requests go over a pool of keep-alive connections; when every
connection is busy, the request waits for one, and the wait counts.

End-to-end: a thread polls the SQLite file (read-only, every 2 ms) for new `events` rows; a delivery is visible
when its row is committed, which is when the read API can return it. End-to-end = first seen - due time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from stats import paced, percentile


def load_bodies(path: Path) -> list[tuple[str, bytes]]:
    out = []
    for line in path.read_bytes().splitlines():
        sig, _, body = line.partition(b" ")
        out.append((sig.decode(), body))
    return out


def request_bytes(host: str, port: int, delivery_id: str, sig: str, body: bytes) -> bytes:
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n"
        f"Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
        f"X-GitHub-Delivery: {delivery_id}\r\nX-GitHub-Event: release\r\nX-GitHub-Hook-ID: 424242\r\n"
        f"X-GitHub-Hook-Installation-Target-ID: 186853002\r\nX-GitHub-Hook-Installation-Target-Type: repository\r\n"
        f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, data: bytes) -> int:
        self.writer.write(data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status


class Poller(threading.Thread):
    """Records when each delivery's `events` row first becomes visible."""

    def __init__(self, db: Path, prefix: str) -> None:
        super().__init__(daemon=True)
        self.db, self.prefix = db, prefix
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, isolation_level=None)
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        while not self.stop.is_set():
            rows = conn.execute("SELECT seq, delivery_id FROM events WHERE seq > ? ORDER BY seq", (last,)).fetchall()
            at = time.perf_counter()
            for seq, delivery_id in rows:
                last = seq
                if delivery_id.startswith(self.prefix):
                    self.seen.setdefault(delivery_id, at)
            time.sleep(0.002)
        conn.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bodies = load_bodies(args.bodies)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(Connection(*await asyncio.open_connection(args.host, args.port)))
    total = int(args.rate * (args.warmup + args.duration))
    warm = int(args.rate * args.warmup)
    due: dict[str, float] = {}
    latencies: list[float] = []
    samples: list[tuple[float, float]] = []
    statuses: dict[int, int] = {}
    errors = 0
    poller = Poller(args.db, args.run) if args.db else None
    if poller:
        poller.start()

    async def one(i: int, at: float) -> None:
        nonlocal errors
        sig, body = bodies[i % len(bodies)]
        delivery_id = f"{args.run}-{i}"
        data = request_bytes(args.host, args.port, delivery_id, sig, body)
        conn = await pool.get()
        try:
            status = await asyncio.wait_for(conn.exchange(data), 10)
        except Exception:
            errors += 1
            conn.writer.close()
            pool.put_nowait(Connection(*await asyncio.open_connection(args.host, args.port)))
            return
        done = time.perf_counter()
        pool.put_nowait(conn)
        if i >= warm:
            due[delivery_id] = at
            latencies.append(done - at)
            samples.append((at, done - at))
            statuses[status] = statuses.get(status, 0) + 1

    start = await paced(total, args.rate, one)
    elapsed = time.perf_counter() - start
    if args.dump:
        args.dump.write_text("".join(f"{at - start:.4f} {lat * 1000:.2f}\n" for at, lat in sorted(samples)))
    result: dict[str, Any] = {
        "rate_target": args.rate,
        "sent": total - warm,
        "achieved_rate": total / elapsed,
        "statuses": statuses,
        "errors": errors,
        "ack_p50_ms": percentile(latencies, 50) * 1000,
        "ack_p99_ms": percentile(latencies, 99) * 1000,
        "ack_p999_ms": percentile(latencies, 99.9) * 1000,
        "ack_max_ms": max(latencies) * 1000 if latencies else float("nan"),
    }
    if poller:
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:  # the poller is a thread: look at what it saw now and then
            if all(d in poller.seen for d in due):
                break
            await asyncio.sleep(0.05)
        poller.stop.set()
        poller.join()
        e2e = [poller.seen[d] - at for d, at in due.items() if d in poller.seen]
        result.update(
            {
                "e2e_seen": len(e2e),
                "e2e_p50_ms": percentile(e2e, 50) * 1000,
                "e2e_p99_ms": percentile(e2e, 99) * 1000,
                "e2e_max_ms": max(e2e) * 1000 if e2e else float("nan"),
            }
        )
        conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        rows = conn.execute(
            "SELECT s.processed_at - d.received_at FROM deliveries d JOIN delivery_states s ON s.seq = d.seq"
            " WHERE d.delivery_id LIKE ? AND s.processed_at IS NOT NULL",
            (args.run + "-%",),
        ).fetchall()
        conn.close()
        server_side = [r[0] for r in rows]
        result["server_processed_minus_received_p99_ms"] = percentile(server_side, 99) * 1000
    for _ in range(pool.qsize()):
        pool.get_nowait().writer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=20, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2, help="seconds sent first, not measured")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--db", type=Path, help="the server's SQLite file, for end-to-end latency")
    parser.add_argument("--run", default=f"ol{int(time.time())}", help="delivery id prefix")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--dump", type=Path, help="write each request's due time (s) and ack latency (ms)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
