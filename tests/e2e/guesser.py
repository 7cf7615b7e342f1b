"""A password guesser for the load test: `python -m tests.e2e.guesser URL THREADS`.

Each thread posts wrong passwords to `/login` as fast as the server answers, until stdin closes. Every 401 (a
password was really verified) is reported at once as a line `401` on stdout; at the end, one JSON line counts
every status seen.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import Counter

import httpx
import orjson

_LOGIN_FORM = re.compile(r'name="login_token" value="([^"]+)"')


def guess(url: str, stop: threading.Event, counts: Counter[int], lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        match = _LOGIN_FORM.search(client.get("/login").text)
        assert match, "no login form token"
        form = {"username": "alice", "password": "wrong guess", "login_token": match.group(1)}
        while not stop.is_set():
            status = client.post("/login", data=form).status_code
            with lock:
                counts[status] += 1
                if status == 401:
                    sys.stdout.write("401\n")
                    sys.stdout.flush()


def main() -> None:
    url, threads = sys.argv[1], int(sys.argv[2])
    stop, lock = threading.Event(), threading.Lock()
    counts: Counter[int] = Counter()
    workers = [threading.Thread(target=guess, args=(url, stop, counts, lock), daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    sys.stdin.read()  # until the test closes it
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    with lock:
        sys.stdout.write(orjson.dumps({str(k): v for k, v in counts.items()}).decode() + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
