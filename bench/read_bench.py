"""Latency of the read side on a seeded store: the dashboard's pages and `GET /api/releases` / `/api/events`,
first pages and deep pages (following `next_cursor`), one request at a time, as a person or a script would.

Prints and writes JSON: for each case, p50/p95/max in ms over its requests. Each case varies its parameters
(repositories, search words) so that one cached answer is not measured over and over.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stats import percentile

OVERVIEW_TTL = 3.0  # ghingest.dashboard.overview.TTL_SECONDS
SEARCH_WORDS = ("crash", "memory leak", "webhook retry", "arm64", "security", "dashboard export", "pars", "docker")


class Bench:
    def __init__(self, base: str, token: str, repeat: int) -> None:
        self.api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.web = httpx.Client(base_url=base, timeout=30)
        self.repeat = repeat
        self.results: dict[str, dict[str, Any]] = {}
        self.dashboard = False
        response = self.web.get("/login", params={"token": token}, follow_redirects=False)
        if response.status_code in (302, 303) and self.web.cookies:
            self.dashboard = self.web.get("/").status_code == 200

    def timed(self, client: httpx.Client, url: str) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        if response.status_code not in (200, 303):  # 303: the event log's delivery id lookup goes to its page
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
        return elapsed, response

    def case(self, name: str, client: httpx.Client, urls: Callable[[int], str], *, warmup: int = 2) -> None:
        for i in range(warmup):
            self.timed(client, urls(i))
        times = [self.timed(client, urls(i))[0] for i in range(self.repeat)]
        self.record(name, times)

    def deep(self, name: str, client: httpx.Client, first: str, pages: int, page_url: Callable[[str], str]) -> None:
        """Follow `next_cursor` of the API from `first`; time each page (API or dashboard, via `page_url`)."""
        times = []
        url = first
        for _ in range(pages):
            cursor = self.api.get(url).json()["next_cursor"]
            if not cursor:
                break
            url = re.sub(r"([?&])cursor=[^&]*&?", r"\1", first).rstrip("?&")
            url += ("&" if "?" in url else "?") + "cursor=" + quote(cursor)
            times.append(self.timed(client, page_url(cursor))[0])
        self.record(name, times)

    def spaced(self, name: str, client: httpx.Client, url: str, count: int, pause: float) -> None:
        """`count` requests `pause` seconds apart: each past a server-side cache's lifetime (the overview's)."""
        times = []
        for _ in range(count):
            time.sleep(pause)
            times.append(self.timed(client, url)[0])
        self.record(name, times)

    def record(self, name: str, times: list[float]) -> None:
        if not times:
            print(f"{name:55s} (no pages)", flush=True)
            return
        self.results[name] = {
            "n": len(times),
            "p50_ms": round(percentile(times, 50) * 1000, 1),
            "p95_ms": round(percentile(times, 95) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
        }
        print(f"{name:55s} {self.results[name]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--token", required=True)
    parser.add_argument("--db", type=Path, required=True, help="the seeded SQLite file (to pick real filters)")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--pages", type=int, default=100, help="deep pages to follow")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    busy = [r[0] for r in conn.execute("SELECT repository FROM releases GROUP BY 1 ORDER BY count(*) DESC LIMIT 20")]
    quiet = [r[0] for r in conn.execute("SELECT repository FROM releases GROUP BY 1 ORDER BY count(*) LIMIT 20")]
    senders = [r[0] for r in conn.execute("SELECT sender FROM events WHERE seq % 997 = 0 LIMIT 40")]
    delivery_ids = [r[0] for r in conn.execute("SELECT delivery_id FROM events WHERE seq % 4999 = 0 LIMIT 40")]
    oldest, newest = conn.execute("SELECT min(received_at), max(received_at) FROM events").fetchone()
    newest = newest or time.time()
    oldest = oldest or newest
    conn.close()
    rng = random.Random(7)
    repos = busy + quiet
    rng.shuffle(repos)

    b = Bench(args.base, args.token, args.repeat)
    api, web = b.api, b.web

    def repo(i: int) -> str:
        return quote(repos[i % len(repos)], safe="")

    def word(i: int) -> str:
        return quote(SEARCH_WORDS[i % len(SEARCH_WORDS)])

    def moment(epoch: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

    day_ago = moment(newest - 86_400)

    def day_in_the_past(i: int) -> str:  # a one-day range in the seed's older months
        start = oldest + (newest - oldest) * (0.1 + (i * 0.037) % 0.7)
        return f"since={moment(start)}&until={moment(start + 86_400)}"

    # The event log's filters (issue 12): (name, query string per request), first and deep pages of each.
    event_filters: list[tuple[str, Callable[[int], str]]] = [
        ("sender=", lambda i: f"sender={quote(senders[i % len(senders)])}"),
        ("destination=ci", lambda i: "destination=ci"),
        ("destination=chat", lambda i: "destination=chat"),
        ("forward_status=dead", lambda i: "forward_status=dead"),
        ("destination=chat&forward_status=dead", lambda i: "destination=chat&forward_status=dead"),
        ("forward_status=pending", lambda i: "forward_status=pending"),
        ("since= (24 h)", lambda i: f"since={day_ago}"),
        ("since=&until= (a day long ago)", day_in_the_past),
        ("event=push&sender=", lambda i: f"event=push&sender={quote(senders[i % len(senders)])}"),
        ("status=failed&since= (24 h)", lambda i: f"status=failed&since={day_ago}"),
    ]

    b.case("api releases, first page", api, lambda i: "/api/releases")
    b.case("api releases ?repo=", api, lambda i: f"/api/releases?repo={repo(i)}")
    b.case("api releases ?state=published&prerelease=true", api, lambda i: "/api/releases?state=published&prerelease=1")
    b.case("api releases ?since=", api, lambda i: f"/api/releases?since=2025-{1 + i % 12:02d}-01T00:00:00Z")
    b.case("api releases ?q= (search)", api, lambda i: f"/api/releases?q={word(i)}")
    b.case("api releases ?repo=&q=", api, lambda i: f"/api/releases?repo={repo(i)}&q={word(i)}")
    b.deep("api releases, deep pages (next_cursor x100)", api, "/api/releases", args.pages,
           lambda c: f"/api/releases?cursor={quote(c)}")  # fmt: skip
    b.deep("api releases ?prerelease=true, deep pages", api, "/api/releases?prerelease=true", args.pages,
           lambda c: f"/api/releases?prerelease=true&cursor={quote(c)}")  # fmt: skip
    b.deep("api releases ?q=fix, deep pages", api, "/api/releases?q=fix", args.pages,
           lambda c: f"/api/releases?q=fix&cursor={quote(c)}")  # fmt: skip
    b.case("api events, first page", api, lambda i: "/api/events")
    b.case("api events ?event=push", api, lambda i: "/api/events?event=push")
    b.case("api events ?repo=", api, lambda i: f"/api/events?repo={repo(i)}")
    b.case("api events ?event=release&action=published", api, lambda i: "/api/events?event=release&action=published")
    b.deep("api events, deep pages (next_cursor x100)", api, "/api/events", args.pages,
           lambda c: f"/api/events?cursor={quote(c)}")  # fmt: skip
    b.deep("api events ?status=failed, deep pages", api, "/api/events?status=failed", args.pages,
           lambda c: f"/api/events?status=failed&cursor={quote(c)}")  # fmt: skip
    b.case(
        "api events ?delivery_id=",
        api,
        lambda i: f"/api/events?delivery_id={quote(delivery_ids[i % len(delivery_ids)])}",
    )
    for label, params in event_filters:
        b.case(f"api events ?{label}", api, lambda i, p=params: f"/api/events?{p(i)}")
        fixed = params(0)
        b.deep(f"api events ?{label}, deep pages", api, f"/api/events?{fixed}", args.pages,
               lambda c, f=fixed: f"/api/events?{f}&cursor={quote(c)}")  # fmt: skip
    if b.dashboard:
        b.case("page / (releases)", web, lambda i: "/")
        b.case("page /?repo= (filtered)", web, lambda i: f"/?repo={repo(i)}")
        b.case("page /?state=published&pre=yes (filtered)", web, lambda i: "/?state=published&pre=yes")
        b.case("page /?q= (searched)", web, lambda i: f"/?q={word(i)}")
        b.case("page /?since=&until= (filtered)", web, lambda i: f"/?since=2025-{1 + i % 12:02d}-01&until=2025-12-31")
        b.deep("page / deep pages (cursor x100)", web, "/api/releases", args.pages, lambda c: f"/?cursor={quote(c)}")
        b.case("page /events", web, lambda i: "/events")
        b.case("page /events?event=push", web, lambda i: "/events?event=push")
        b.case("page /events?repo=", web, lambda i: f"/events?repo={repo(i)}")
        b.deep("page /events deep pages (cursor x100)", web, "/api/events", args.pages,
               lambda c: f"/events?cursor={quote(c)}")  # fmt: skip
        b.case("page /repos/{owner}/{name}", web, lambda i: "/repos/" + repos[i % len(repos)])
        b.case("page /overview (figures cached)", web, lambda i: "/overview")
        b.spaced("page /overview (figures computed)", web, "/overview", min(args.repeat, 10), OVERVIEW_TTL + 0.1)
        b.case("page /events?delivery_id= (lookup)", web,
               lambda i: f"/events?delivery_id={quote(delivery_ids[i % len(delivery_ids)])}")  # fmt: skip
        for label, params in event_filters:
            b.case(f"page /events?{label}", web, lambda i, p=params: f"/events?{p(i)}")
            fixed = params(0)
            b.deep(f"page /events?{label}, deep pages", web, f"/api/events?{fixed}", args.pages,
                   lambda c, f=fixed: f"/events?{f}&cursor={quote(c)}")  # fmt: skip
    else:
        print("dashboard pages: not available (no /login?token= sign-in); measured the API only")
    if args.out:
        args.out.write_text(json.dumps({"dashboard": b.dashboard, "cases": b.results}, indent=2))


if __name__ == "__main__":
    main()
