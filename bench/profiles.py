"""Deployment profiles side by side, measured the same way in the same run (`make bench BENCH_PROFILE=...`).

- `embedded`: one `ghingest serve` on SQLite (receiver, worker, forwarder, dashboard in one process).
- `scale-out`: a 3-node NATS JetStream cluster (R3 stream) and PostgreSQL (a fresh database on the machine's
  server), with 2 `ghingest receiver`, 2 `ghingest worker` and 1 `ghingest dashboard` processes.

Figures per profile:
- durable acks/s at saturation, 32 and 128 connections (wrk; with two receivers, one wrk per receiver with half
  the connections each, rates summed, as a load balancer would spread them);
- ack p50/p99 at 500 req/s (open loop, no coordinated omission; requests alternate between the receivers);
- end-to-end p50/p99 at 500 req/s: from a request's due time to its event arriving on the dashboard's live stream
  (`GET /live`, Server-Sent Events) — for scale-out, served by another process than the one that received it;
- processing rate: deliveries acknowledged with the workers stopped, then drained by the workers (the embedded
  profile's worker runs as `ghingest worker` on the same SQLite file, the code `serve` runs);
- CPU seconds per 1,000 acknowledged deliveries across every process of the profile (from /proc, saturation run).

Every process listens on 127.0.0.1 only. Prints one JSON document per profile and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.nats_cluster

from openloop import Connection, load_bodies, request_bytes
from stats import paced, percentile

ROOT = Path(__file__).resolve().parent.parent
GHINGEST = str(ROOT / ".venv" / "bin" / "ghingest")
# `--baseline DIR`: also measure the embedded profile of another checkout (its own .venv), first, in the same run
BASELINE: dict[str, str] = {}
SECRET = "bench-secret-" + secrets.token_hex(8)
TOKEN = "bench-token-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    role: str
    process: subprocess.Popen[bytes]
    port: int | None = None

    def cpu_seconds(self) -> float:
        """User + system CPU of the process (and its children that ended)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Deployment:
    name: str
    work: Path
    env: dict[str, str]
    binary: str = GHINGEST
    procs: list[Proc] = field(default_factory=list)

    def start(self, role: str, *, listen: bool) -> Proc:
        port = free_port() if listen else None
        env = {**self.env, **({"GHINGEST_PORT": str(port)} if port else {})}
        log = (self.work / f"{self.name}-{role}-{len(self.procs)}.log").open("ab")
        process = subprocess.Popen(
            [self.binary, role, *(["--no-migrate"] if listen else [])],
            cwd=self.work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        proc = Proc(role, process, port)
        self.procs.append(proc)
        if port:
            wait_ready(proc)
        return proc

    def listening(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role and p.process.poll() is None]

    def cpu_seconds(self) -> float:
        return sum(p.cpu_seconds() for p in self.procs if p.process.poll() is None)

    def stop(self, role: str | None = None) -> None:
        for proc in self.procs:
            if role is None or proc.role == role:
                proc.stop()
        self.procs = [p for p in self.procs if p.process.poll() is None]


def wait_ready(proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"ghingest {proc.role} exited with {proc.process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{proc.port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"ghingest {proc.role} did not become ready")


def inbox_depth(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    match = re.search(r"^ghingest_inbox_depth (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else -1


def wait_drained(port: int, timeout: float) -> float:
    """Seconds until the inbox is empty (bounded)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if inbox_depth(port) == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started


# --- load -------------------------------------------------------------------------------------------------------


def saturate(deployment: Deployment, bodies: Path, connections: int, seconds: int, tag: str) -> dict[str, Any]:
    receivers = deployment.listening("receiver") or deployment.listening("serve")
    share = max(1, connections // len(receivers))
    cpu_before = deployment.cpu_seconds()
    runs = []
    for n, receiver in enumerate(receivers):
        env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_RUN": f"{tag}-{n}"}
        argv = ["wrk", "-t1", f"-c{share}", f"-d{seconds}s", "--timeout", "10s", "-s", str(ROOT / "bench" / "post.lua"),
                f"http://127.0.0.1:{receiver.port}/webhooks/github"]  # fmt: skip
        runs.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [run.communicate()[0] for run in runs]
    cpu = deployment.cpu_seconds() - cpu_before
    rate = sum(float(re.search(r"Requests/sec:\s+(\S+)", out).group(1)) for out in outputs)  # type: ignore[union-attr]
    results = [dict(re.findall(r"(\w+)=(\S+)", out.split("WRK_RESULT", 1)[1])) for out in outputs]
    requests = sum(int(r["requests"]) for r in results)
    errors = sum(int(r[k]) for r in results for k in r if k.startswith("errors_"))
    return {
        "connections": connections,
        "acks_per_s": rate,
        "requests": requests,
        "errors": errors,
        "p99_ms": max(int(r["p99_us"]) for r in results) / 1000,
        "cpu_s_per_1000": cpu / max(1, requests) * 1000,
    }


class LiveWatcher:
    """Follows a dashboard's `GET /live` and notes when each event's delivery id first arrives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._arrived = asyncio.Event()

    async def _follow(self) -> None:
        last: str | None = None
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=60)) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    extra = {"Last-Event-ID": last} if last else {}
                    url = f"http://127.0.0.1:{self.port}/live"
                    async with client.stream("GET", url, headers={**headers, **extra}) as response:
                        kind = ""
                        async for line in response.aiter_lines():
                            if line.startswith("id: "):
                                last = line[4:]
                            elif line.startswith("event: "):
                                kind = line[7:]
                                if kind == "hello":
                                    self.connected.set()
                            elif line.startswith("data: ") and kind == "event":
                                ref = json.loads(line[6:]).get("ref", "")
                                self.seen.setdefault(ref, time.perf_counter())
                                self._arrived.set()

    async def wait_for(self, refs: set[str], timeout: float) -> None:
        """Until every ref in `refs` has arrived, or `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while not refs <= self.seen.keys() and time.perf_counter() < deadline:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - time.perf_counter())

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def open_loop(
    ports: list[int], dashboard: int, bodies_file: Path, rate: float, seconds: float, tag: str
) -> dict[str, Any]:
    bodies = load_bodies(bodies_file)
    watcher = LiveWatcher(dashboard)
    watcher.start()
    await asyncio.wait_for(watcher.connected.wait(), 30)
    pools: list[asyncio.Queue[Connection]] = []
    for port in ports:
        pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(max(1, 32 // len(ports))):
            pool.put_nowait(Connection(*await asyncio.open_connection("127.0.0.1", port)))
        pools.append(pool)
    warm = int(rate * 2)
    total = warm + int(rate * seconds)
    due: dict[str, float] = {}
    acks: list[float] = []
    statuses: dict[int, int] = {}

    async def one(i: int, at: float) -> None:
        port, pool = ports[i % len(ports)], pools[i % len(ports)]
        sig, body = bodies[i % len(bodies)]
        delivery_id = f"{tag}-{i}"
        conn = await pool.get()
        try:
            status = await asyncio.wait_for(conn.exchange(request_bytes("127.0.0.1", port, delivery_id, sig, body)), 10)
        except Exception:
            statuses[-1] = statuses.get(-1, 0) + 1
            conn.writer.close()
            pool.put_nowait(Connection(*await asyncio.open_connection("127.0.0.1", port)))
            return
        done = time.perf_counter()
        pool.put_nowait(conn)
        if i >= warm:
            statuses[status] = statuses.get(status, 0) + 1
            acks.append(done - at)
            due[delivery_id] = at

    await paced(total, rate, one)
    await watcher.wait_for(set(due), timeout=30)
    await watcher.stop()
    e2e = [watcher.seen[d] - at for d, at in due.items() if d in watcher.seen]
    for pool in pools:
        while not pool.empty():
            pool.get_nowait().writer.close()
    return {
        "rate": rate,
        "sent": len(due),
        "statuses": statuses,
        "ack_p50_ms": percentile(acks, 50) * 1000,
        "ack_p99_ms": percentile(acks, 99) * 1000,
        "e2e_seen": len(e2e),
        "e2e_p50_ms": percentile(e2e, 50) * 1000,
        "e2e_p99_ms": percentile(e2e, 99) * 1000,
        "e2e_max_ms": max(e2e) * 1000 if e2e else float("nan"),
    }


def processing_rate(deployment: Deployment, bodies: Path, workers: int, count_seconds: int, tag: str) -> dict[str, Any]:
    """Stop the workers, acknowledge a backlog, start the workers and time the drain."""
    metrics_port = (deployment.listening("dashboard") or deployment.listening("receiver"))[0].port
    assert metrics_port is not None
    deployment.stop("worker")
    load = saturate(deployment, bodies, 64, count_seconds, tag)
    backlog = inbox_depth(metrics_port)
    for _ in range(workers):
        deployment.start("worker", listen=False)
    first, first_depth = None, backlog
    started = time.monotonic()
    while time.monotonic() - started < 600:
        depth = inbox_depth(metrics_port)
        now = time.monotonic()
        if first is None and depth < backlog:
            first, first_depth = now, depth
        if depth == 0:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - (first or started)  # from the first delivery processed: not the workers' start-up
    return {"backlog": backlog, "acked": load["requests"], "per_s": first_depth / elapsed if elapsed > 0 else 0.0}


# --- profiles ---------------------------------------------------------------------------------------------------


def base_env(work: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("GHINGEST_")},
        "GHINGEST_DATA_DIR": str(work / "data"),
        "GHINGEST_HOST": "127.0.0.1",
        "GHINGEST_WEBHOOK_SECRETS": SECRET,
        "GHINGEST_API_TOKENS": TOKEN,
        "GHINGEST_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
    }


@contextlib.contextmanager
def embedded(work: Path, binary: str = GHINGEST) -> Iterator[Deployment]:
    env = {**base_env(work), "GHINGEST_DATABASE_URL": f"sqlite:///{work / 'embedded.db'}"}
    subprocess.run([binary, "db", "upgrade"], env=env, cwd=work, check=True, capture_output=True)
    deployment = Deployment("embedded", work, env, binary)
    try:
        deployment.start("serve", listen=True)
        yield deployment
    finally:
        deployment.stop()


@contextlib.contextmanager
def scale_out(work: Path) -> Iterator[Deployment]:
    import psycopg
    from tests.nats_cluster import NatsCluster

    admin = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"ghingest_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    cluster = NatsCluster(work / "nats")
    cluster.start()
    env = {
        **base_env(work),
        "GHINGEST_DATABASE_URL": admin.rsplit("/", 1)[0] + f"/{name}",
        "GHINGEST_BUS_URL": ",".join(cluster.urls),
        "GHINGEST_BUS_REPLICAS": "3",
        "GHINGEST_BUS_MAX_BYTES": str(2 * 2**30),  # the test cluster's nodes hold 8 GB of file store each
    }
    deployment = Deployment("scale-out", work, env)
    try:
        subprocess.run([GHINGEST, "db", "upgrade"], env=env, cwd=work, check=True, capture_output=True)
        for _ in range(2):
            deployment.start("receiver", listen=True)
        for _ in range(2):
            deployment.start("worker", listen=False)
        deployment.start("dashboard", listen=True)
        yield deployment
    finally:
        deployment.stop()
        cluster.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def baseline(work: Path) -> Iterator[Deployment]:
    with embedded(work, BASELINE["binary"]) as deployment:
        yield deployment


PROFILES = {"embedded": (embedded, 1), "scale-out": (scale_out, 2), "baseline": (baseline, 1)}


def measure(name: str, work: Path, bodies: Path, quick: bool) -> dict[str, Any]:
    opener, workers = PROFILES[name]
    seconds = 5 if quick else 10
    tag = f"{name[:2]}{int(time.time())}"
    with opener(work) as deployment:
        metrics_port = (deployment.listening("dashboard") or deployment.listening("serve"))[0].port
        assert metrics_port is not None
        result: dict[str, Any] = {"profile": name, "saturation": []}
        for connections in (32, 128):
            result["saturation"].append(saturate(deployment, bodies, connections, seconds, f"{tag}s{connections}"))
            result["saturation"][-1]["drain_s"] = wait_drained(metrics_port, 300)
        receivers = [p.port for p in deployment.listening("receiver") or deployment.listening("serve")]
        result["fixed500"] = asyncio.run(
            open_loop([p for p in receivers if p], metrics_port, bodies, 500, 8 if quick else 20, f"{tag}o")
        )
        wait_drained(metrics_port, 300)
        if name in ("embedded", "baseline"):  # processing: a worker process of its own, on the same file
            deployment.stop("serve")
            deployment.start("receiver", listen=True)
            deployment.start("dashboard", listen=True)
        result["processing"] = processing_rate(deployment, bodies, workers, 3 if quick else 6, f"{tag}p")
    return result


def table(results: list[dict[str, Any]]) -> str:
    def f500(key: str) -> list[str]:
        return [f"{r['fixed500'][key + '_p50_ms']:.1f} / {r['fixed500'][key + '_p99_ms']:.1f} ms" for r in results]

    rows = [("figure", *[r["profile"] for r in results])]
    for i, c in enumerate((32, 128)):
        runs = [r["saturation"][i] for r in results]
        rows.append((f"acks/s at saturation, {c} connections", *[f"{run['acks_per_s']:,.0f}" for run in runs]))
        rows.append((f"  CPU s per 1,000 acks ({c})", *[f"{run['cpu_s_per_1000']:.2f}" for run in runs]))
        rows.append((f"  errors ({c})", *[str(run["errors"]) for run in runs]))
    rows.append(("ack p50 / p99 at 500 req/s", *f500("ack")))
    rows.append(("end-to-end p50 / p99 at 500 req/s (to a dashboard's live stream)", *f500("e2e")))
    rows.append(("  seen live / acked", *[f"{r['fixed500']['e2e_seen']} / {r['fixed500']['sent']}" for r in results]))
    rows.append(("processing rate (a backlog drained)", *[f"{r['processing']['per_s']:,.0f}/s" for r in results]))
    width = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(" | ".join(cell.ljust(width[i]) for i, cell in enumerate(row)) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="embedded,scale-out")
    parser.add_argument("--bodies", type=Path, help="signed bodies from bench/prep.py (default: made here)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--baseline", type=Path, help="another checkout (with its .venv): its embedded profile first")
    args = parser.parse_args()
    profiles = args.profiles.split(",")
    if args.baseline:
        BASELINE["binary"] = str(args.baseline / ".venv" / "bin" / "ghingest")
        profiles.insert(0, "baseline")
    results = []
    if args.bodies is None:
        args.bodies = Path(tempfile.mkdtemp(prefix="ghingest-bench-bodies-")) / "bodies.txt"
        prep = [sys.executable, str(ROOT / "bench" / "prep.py"), "--out", str(args.bodies), "--secret", SECRET]
        subprocess.run([*prep, "--count", "2000", "--releases", "500", "--repos", "100"], check=True)
    for name in profiles:
        with tempfile.TemporaryDirectory(prefix=f"ghingest-bench-{name}-") as folder:
            print(f"== profile {name}", flush=True)
            results.append(measure(name, Path(folder), args.bodies, args.quick))
            print(json.dumps(results[-1], indent=2), flush=True)
    text = table(results)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
