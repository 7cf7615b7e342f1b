"""`python -m tests.flood URL COUNT RATE WORKER`: COUNT webhook requests signed with a secret the server does not
have, at RATE a second (an open loop, paced by the clock), each from another client (X-Forwarded-For
198.51.WORKER.n, for a server that trusts 127.0.0.1 as its proxy) and another hook id. Its own process, so that the
load it makes does not share the interpreter (and its GIL) with a server under test. Prints how many got a 401."""

from __future__ import annotations

import sys
import time

import httpx
import orjson

from ghingest.app import sender
from ghingest.app.samples import release_payload


def flood(url: str, count: int, rate: float, worker: int) -> int:
    body = orjson.dumps(release_payload())
    refused = 0
    with httpx.Client(base_url=url, timeout=10) as client:
        start = time.monotonic()
        for n in range(count):
            request = sender.hookshot_request(
                body, event="release", secret="flood-secret", hook_id=worker * 100_000 + n
            )
            headers = {**request.headers, "X-Forwarded-For": f"198.51.{worker}.{n % 250}"}
            refused += client.post("/webhooks/github", content=request.body, headers=headers).status_code == 401
            ahead = start + (n + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # pacing the open loop
    return refused


if __name__ == "__main__":
    url, count, rate, worker = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    print(flood(url, count, rate, worker))
