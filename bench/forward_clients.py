"""Forward clients side by side (issue 8): forwards/s and CPU per forward to a fast local destination, loopback only.

Each variant is a `ForwardTransport` (the forwarder's seam) built from the same `TransportOptions` and run in a fresh
process under uvloop, as in `ghingest serve`: `--concurrency` tasks POST a release payload (~7.6 kB, the forwarder's
headers) for `--seconds` over one pool of `--concurrency` connections, after a warm-up. The destination is
bench/forward_destination.py (uvicorn, httptools) in its own process. Variants run in turn, `--rounds` times, so that
the load of a shared machine falls on all alike; ratios to the first variant are printed per round and as medians.

  aiohttp  ghingest.app.forward_client (the default): one ClientSession per destination, TCPConnector(limit=n)
  httpx    one AsyncClient per destination, Limits(max_connections=n, max_keepalive_connections=n), trust_env=False
  h11      ghingest.app.http1, the hand-written h11 client aiohttp replaced (when present: check out the commit named
           in ADR 0006, addendum 2, to compare all three)

Run: .venv/bin/python bench/forward_clients.py [--seconds 6] [--rounds 3] [--concurrency 4 32]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import orjson

from forward_bench import wait_ready
from ghingest.app.forward_transport import Answer, ForwardTransport, TransportOptions
from ghingest.app.samples import release_payload

ROOT = Path(__file__).resolve().parents[1]
MAX_BODY = 2048  # what the forwarder reads of an answer
HEADERS = {
    "X-GitHub-Event": "release",
    "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "X-GitHub-Hook-ID": "292430182",
    "X-GitHub-Hook-Installation-Target-ID": "79929171",
    "X-GitHub-Hook-Installation-Target-Type": "repository",
    "User-Agent": "ghingest-forwarder",
    "Content-Type": "application/json",
    "X-Hub-Signature-256": "sha256=" + "0" * 64,
}


class HttpxTransport:
    """httpx as a forward transport: one long-lived AsyncClient per destination."""

    def __init__(self, options: TransportOptions) -> None:
        limits = httpx.Limits(max_connections=options.size, max_keepalive_connections=options.size)
        self._client = httpx.AsyncClient(limits=limits, trust_env=False, follow_redirects=False, timeout=30)
        self._origin = options.url.split("/", 3)[:3]
        self._base = "/".join(self._origin)
        self._max_body = options.max_body

    async def post(self, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        async with self._client.stream("POST", self._base + target, content=body, headers=headers) as response:
            content = b""
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) >= self._max_body:
                    break
            return Answer(response.status_code, dict(response.headers), content[: self._max_body])

    async def close(self) -> None:
        await self._client.aclose()


def build(variant: str, options: TransportOptions) -> ForwardTransport:
    if variant == "aiohttp":
        from ghingest.app import forward_client

        return forward_client.transport(options)
    if variant == "h11":
        from ghingest.app import http1  # type: ignore[attr-defined,unused-ignore]

        transport: ForwardTransport = http1.transport(options)
        return transport
    if variant == "httpx":
        return HttpxTransport(options)
    raise ValueError(variant)


def available() -> list[str]:
    variants = ["aiohttp", "httpx"]
    if importlib.util.find_spec("ghingest.app.http1") is not None:
        variants.insert(0, "h11")
    return variants


async def measure(variant: str, url: str, concurrency: int, seconds: float) -> dict[str, object]:
    transport = build(variant, TransportOptions(url=url, size=concurrency, max_body=MAX_BODY))
    body = orjson.dumps(release_payload())
    count = 0
    failures = 0

    async def worker(until: float) -> None:
        nonlocal count, failures
        while time.monotonic() < until:
            answer = await transport.post("/hook", HEADERS, body)
            if answer.status == 200:
                count += 1
            else:
                failures += 1

    await asyncio.gather(*(worker(time.monotonic() + 1.0) for _ in range(concurrency)))  # warm-up: 1 s
    count = failures = 0
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker(started + seconds) for _ in range(concurrency)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    await transport.close()
    return {
        "variant": variant,
        "concurrency": concurrency,
        "forwards": count,
        "failures": failures,
        "forwards_per_s": round(count / elapsed, 1),
        "cpu_ms_per_forward": round(cpu / max(count, 1) * 1000, 4),
    }


def child(argv: list[str]) -> int:
    import uvloop

    variant, url, concurrency, seconds = argv[0], argv[1], int(argv[2]), float(argv[3])
    print(json.dumps(uvloop.run(measure(variant, url, concurrency, seconds))))
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--variants", nargs="+", default=available())
    args = parser.parse_args()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    destination = subprocess.Popen([sys.executable, str(ROOT / "bench" / "forward_destination.py"), str(port)])
    results: list[dict[str, object]] = []
    try:
        wait_ready(f"{url}/stats", destination)
        for round_number in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                for variant in args.variants:
                    load = os.getloadavg()[0]
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", variant, f"{url}/hook", str(concurrency),
                         str(args.seconds)],
                        capture_output=True, text=True, timeout=args.seconds + 60, check=True,
                    )  # fmt: skip
                    result = {**json.loads(out.stdout), "round": round_number, "loadavg": round(load, 2)}
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        destination.terminate()
        destination.wait(timeout=15)

    base = args.variants[0]
    print(f"\nmedians over {args.rounds} rounds; ratio = variant / {base} (same round, then the median of ratios)")
    print(f"{'concurrency':>11} {'variant':>8} {'forwards/s':>11} {'CPU ms/forward':>15} {'rate ratio':>11} "
          f"{'CPU ratio':>10}")  # fmt: skip
    for concurrency in args.concurrency:
        for variant in args.variants:
            mine = [r for r in results if r["variant"] == variant and r["concurrency"] == concurrency]
            theirs = {r["round"]: r for r in results if r["variant"] == base and r["concurrency"] == concurrency}
            rate = statistics.median(float(r["forwards_per_s"]) for r in mine)  # type: ignore[arg-type]
            cpu = statistics.median(float(r["cpu_ms_per_forward"]) for r in mine)  # type: ignore[arg-type]
            rate_ratio = statistics.median(
                float(r["forwards_per_s"]) / float(theirs[r["round"]]["forwards_per_s"])  # type: ignore[arg-type]
                for r in mine
            )
            cpu_ratio = statistics.median(
                float(r["cpu_ms_per_forward"]) / float(theirs[r["round"]]["cpu_ms_per_forward"])  # type: ignore[arg-type]
                for r in mine
            )
            print(f"{concurrency:>11} {variant:>8} {rate:>11.0f} {cpu:>15.3f} {rate_ratio:>11.2f} {cpu_ratio:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
