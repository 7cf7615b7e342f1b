"""A fast forward destination for the forwarding benchmark: answers 200 at once and remembers when each
`X-GitHub-Delivery` first arrived. `GET /stats` returns the count; `GET /arrivals` the first-arrival times.

Run: python bench/forward_destination.py PORT   (uvicorn, uvloop, httptools, 127.0.0.1 only)
"""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson
import uvicorn

received = 0
first_arrival: dict[str, float] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global received
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        body = orjson.dumps({"received": received} if scope["path"] == "/stats" else first_arrival)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    at = time.time()
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    received += 1
    for name, value in scope["headers"]:
        if name == b"x-github-delivery":
            first_arrival.setdefault(value.decode(), at)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="off")  # fmt: skip
