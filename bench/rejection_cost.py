"""CPU per refused webhook request in the receiver itself (`WebhookReceiver`, the bare ASGI callable), without an
HTTP server: a wrong-secret release body from 40,000 client addresses and 1,000 hook ids, with the rejected-requests
recorder (issue 12: a log line per bucket, an in-memory count) and without it (a log line per refusal, as before).

What it leaves out is the HTTP server's own cost per request (uvicorn, httptools, asyncio), which the open-loop
flood in bench/run.sh includes. Prints `rejection_cpu_us=<with> with the recorder, <without> without`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ghingest.app.metrics import Metrics
from ghingest.app.receiver import WebhookReceiver
from ghingest.app.rejections import RejectionRecorder
from ghingest.ports.inbox import InboxCapabilities

BODY = b'{"action":"published","release":{"id":1,"tag_name":"v1.0.0"},"repository":{"full_name":"o/r"}}'


class _Nowhere:
    """Inbox, store and rejection log that keep nothing (a refused request reaches none of them)."""

    capabilities = InboxCapabilities()

    async def append(self, *_args: Any, **_kw: Any) -> bool:
        return True

    async def record_sighting(self, *_args: Any, **_kw: Any) -> None:
        return None

    async def record(self, *_args: Any, **_kw: Any) -> None:
        return None


def _scopes(count: int) -> list[dict[str, Any]]:
    def headers(i: int) -> Sequence[tuple[bytes, bytes]]:
        return [
            (b"content-type", b"application/json"),
            (b"x-github-event", b"release"),
            (b"x-github-delivery", str(uuid.uuid4()).encode()),
            (b"x-github-hook-id", str(i % 1000).encode()),
            (b"x-hub-signature-256", b"sha256=" + b"0" * 64),
            (b"content-length", str(len(BODY)).encode()),
        ]

    return [
        {"type": "http", "method": "POST", "path": "/webhooks/github", "headers": headers(i),
         "client": (f"10.{i % 200}.{i % 250}.{i % 7}", 40000)}
        for i in range(count)
    ]  # fmt: skip


async def _cpu_per_request(*, recorder: bool, count: int) -> float:
    metrics = Metrics()
    nowhere = _Nowhere()
    rejections = RejectionRecorder(nowhere, metrics=metrics) if recorder else None  # type: ignore[arg-type]
    receiver = WebhookReceiver(
        nowhere,  # type: ignore[arg-type]
        nowhere,  # type: ignore[arg-type]
        secrets=[b"the-configured-secret"],
        metrics=metrics,
        rejections=rejections,
    )

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    scopes = _scopes(count)
    started = time.process_time()
    for scope in scopes:
        await receiver(scope, receive, send)
    return (time.process_time() - started) / count * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):  # the receiver's log lines (stdout) are not the figure
        figures = {
            flag: [await _cpu_per_request(recorder=flag, count=args.count) for _ in range(3)] for flag in (True, False)
        }
    best = {flag: min(runs) for flag, runs in figures.items()}
    print(
        f"rejection_cpu_us={best[True]:.1f} with the recorder, {best[False]:.1f} without (best of 3, {args.count} each)"
    )


if __name__ == "__main__":
    asyncio.run(main())
