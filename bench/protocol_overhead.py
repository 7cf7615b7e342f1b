"""In-process micro-benchmark: what `LimitedHttpToolsProtocol` costs per request over uvicorn's own httptools protocol.

No sockets: a fake transport takes the answers, so the figure is the protocol's CPU time per request (parsing, the
limits' bookkeeping, starting the ASGI task and writing the answer of a trivial application), for a GitHub-like
request (13 header fields, an 8 KB body) on a keep-alive connection and on a new connection per request.
Not part of `make bench`; run: .venv/bin/python bench/protocol_overhead.py [requests] [rounds]
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from ghingest.app.http_limits import HttpLimits, protocol_class
from ghingest.app.metrics import Metrics

BODY = b'{"action": "published", "release": {"body": "' + b"x" * 8000 + b'"}}'
HEAD = (
    b"POST /webhooks/github HTTP/1.1\r\nHost: ghingest.example\r\nAccept: */*\r\n"
    b"Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/044aadd\r\n"
    b"X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958\r\nX-GitHub-Event: release\r\n"
    b"X-GitHub-Hook-ID: 292430182\r\nX-GitHub-Hook-Installation-Target-ID: 79929171\r\n"
    b"X-GitHub-Hook-Installation-Target-Type: repository\r\n"
    b"X-Hub-Signature: sha1=7d38cdd689735b008b3c702edd92eea23791c5f6\r\n"
    b"X-Hub-Signature-256: sha256=d57c68ca6f92289e6987922ff26938930f6e66a2d161ef06abdf1859230aa23c\r\n"
)
KEEP_ALIVE = HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
CLOSE = HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
ANSWER = b'{"delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}'


async def app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False
        self.answers = 0

    def write(self, data: Any) -> None:
        self.answers += 1

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def run(cls: type[HttpToolsProtocol], requests: int, *, keep_alive: bool) -> float:
    config = Config(app, log_level="warning", access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    transport = Transport()
    protocol = cls(config, state, {}, loop)
    protocol.connection_made(transport)
    started = time.process_time()  # CPU time: the machine is shared
    for _ in range(requests):
        if not keep_alive:
            transport = Transport()
            protocol = cls(config, state, {}, loop)
            protocol.connection_made(transport)
        protocol.data_received(KEEP_ALIVE if keep_alive else CLOSE)
        while state.tasks:  # noqa: ASYNC110 - the tasks are uvicorn's; nothing to wait on but them
            await asyncio.sleep(0)
        if not keep_alive:
            protocol.connection_lost(None)
    elapsed = time.process_time() - started
    protocol.connection_lost(None)
    return elapsed / requests * 1e6


async def main(requests: int, rounds: int) -> None:
    limits = HttpLimits(10.0, 20.0, 5.0, 64 * 1024, 100, 1000)
    limited = protocol_class(limits, Metrics())
    for keep_alive in (True, False):
        figures: dict[str, list[float]] = {"uvicorn httptools": [], "limited": []}
        for _ in range(rounds):  # interleaved, so that both see the same machine
            figures["uvicorn httptools"].append(await run(HttpToolsProtocol, requests, keep_alive=keep_alive))
            figures["limited"].append(await run(limited, requests, keep_alive=keep_alive))
        mode = "keep-alive" if keep_alive else "new connection per request"
        base, ours = (min(values) for values in figures.values())  # interference only ever adds time
        print(
            f"{mode}: uvicorn {base:.2f} µs, limited {ours:.2f} µs per request ({ours - base:+.2f} µs; min of {rounds})"
        )


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    uvloop.run(main(*(arguments + [5000, 41][len(arguments) :])))
