"""Processing rate: record N deliveries with the worker off, then time the worker draining them.

Runs in-process against a fresh SQLite file, with the same Runtime, settings (batch size, synchronous=FULL)
and logging as `ghingest serve`. Logs go to stdout as in production; run this with stdout redirected.
The figure: deliveries/s from `received` in the inbox to event + release record committed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

from ghingest.adapters.sql import migrate
from ghingest.app.logs import configure_logging
from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from ghingest.core.delivery import ContentKind, IncomingDelivery


def deliveries(bodies_file: Path, count: int, run: str) -> list[IncomingDelivery]:
    bodies = [line.partition(b" ")[2] for line in bodies_file.read_bytes().splitlines()]
    out = []
    for i in range(count):
        delivery_id = f"{run}-{i}"
        headers = {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/bench",
            "x-github-delivery": delivery_id,
            "x-github-event": "release",
            "x-github-hook-id": "424242",
        }
        out.append(
            IncomingDelivery(
                delivery_id=delivery_id,
                event="release",
                hook_id="424242",
                content_kind=ContentKind.JSON,
                headers=headers,
                body=bodies[i % len(bodies)],
                secret_index=0,
            )
        )
    return out


async def main_async(args: argparse.Namespace) -> dict[str, float]:
    db = args.dir / "processing.db"
    settings = load_settings(
        database_url=f"sqlite:///{db}",
        data_dir=args.dir / "data",
        webhook_secrets="bench-secret-0123",
        api_tokens="bench-token-0123456",
    )
    configure_logging(settings.log_level)
    migrate.upgrade(settings.database_url)
    runtime = Runtime.build(settings, run_worker=False)
    await runtime.start()
    try:
        todo = deliveries(args.bodies, args.count, f"proc{int(time.time())}")
        inbox = runtime.backend.inbox
        started = time.perf_counter()
        for first in range(0, len(todo), 500):
            chunk = todo[first : first + 500]
            await asyncio.gather(*(inbox.append(d, received_at=time.time()) for d in chunk))
        appended = time.perf_counter() - started
        worker = runtime.worker()
        started, cpu_started = time.perf_counter(), time.process_time()
        done = await worker.drain()
        drained, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await runtime.stop()
    conn = sqlite3.connect(db)
    processed = conn.execute("SELECT count(*) FROM delivery_states WHERE status = 'processed'").fetchone()[0]
    releases = conn.execute("SELECT count(*) FROM releases").fetchone()[0]
    conn.close()
    return {
        "deliveries": args.count,
        "processed": processed,
        "releases": releases,
        "worker_batch_size": settings.worker_batch_size,
        "drained": done,
        "processing_per_s": done / drained,
        "cpu_us_per_delivery": cpu / max(1, done) * 1e6,
        "inprocess_append_per_s": args.count / appended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.dir / 'processing.db'}{suffix}").unlink(missing_ok=True)
    result = asyncio.run(main_async(args))
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result), file=sys.stderr)


if __name__ == "__main__":
    main()
