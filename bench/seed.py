"""Seed the embedded store for the dashboard and read-API benchmarks: events, releases, repositories.

Bulk inserts straight into the tables of `ghingest.adapters.sql.schema` (after `ghingest db upgrade`), in big
transactions with `synchronous=OFF` (a seed that crashes is simply run again). Every event has its delivery row
(a small but well-formed body and headers); every release has the `release_changes` row it was folded from, and
its `release` event. The FTS index `releases_fts` is kept by its triggers.

Forwarding (the event log's and the overview's figures): every release is forwarded to `ci` and `chat`, four in
five other events to `ci`; 99.4 % delivered (200), 0.5 % dead (410), the newest few still pending.

Defaults: 1,000,000 events, 100,000 releases, 2,000 repositories, spread over two years, of which the last
`--recent` (20,000) events came in the 24 hours before the seed ran (the overview's window).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

WORDS = tuple(
    [
        "fix",
        "crash",
        "memory",
        "leak",
        "performance",
        "faster",
        "parser",
        "cache",
        "login",
        "token",
        "webhook",
        "retry",
        "timeout",
        "release",
        "build",
        "docs",
        "windows",
        "linux",
        "macos",
        "arm64",
        "python",
        "rust",
        "api",
        "breaking",
        "deprecate",
        "migration",
        "security",
        "cve",
        "upgrade",
        "dependency",
        "dashboard",
        "search",
        "export",
        "import",
        "metrics",
        "logging",
        "tracing",
        "config",
        "plugin",
        "cli",
        "flag",
        "docker",
        "kubernetes",
        "helm",
    ]
)
OTHER_EVENTS = (
    ("push", (None,), 50),
    ("pull_request", ("opened", "closed", "synchronize", "reopened"), 20),
    ("issues", ("opened", "closed", "labeled"), 10),
    ("issue_comment", ("created", "edited"), 8),
    ("workflow_run", ("requested", "completed"), 8),
    ("star", ("created",), 4),
)
START = datetime(2024, 6, 1, tzinfo=UTC)
SPAN = timedelta(days=730)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def repositories(count: int) -> list[str]:
    return [f"org-{i % 97}/project-{i}" for i in range(count)]


def notes(rng: random.Random, tag: str) -> str:
    items = ["* " + " ".join(rng.choices(WORDS, k=rng.randint(3, 8))) for _ in range(rng.randint(2, 6))]
    return f"## What's changed in {tag}\n\n" + "\n".join(items) + "\n"


def release_rows(rng: random.Random, repos: list[str], count: int, base_id: int) -> Iterator[dict[str, Any]]:
    versions: dict[str, int] = {}
    for i in range(count):
        repo = repos[int(rng.paretovariate(1.2) * 7) % len(repos)] if i % 3 else repos[i % len(repos)]
        n = versions.get(repo, 0)
        versions[repo] = n + 1
        tag = f"v{n // 100}.{(n // 10) % 10}.{n % 10}"
        created = START + SPAN * (i / count) + timedelta(seconds=rng.randint(0, 3600))
        draft = rng.random() < 0.02
        prerelease = rng.random() < 0.1
        roll = rng.random()
        state = "draft" if draft else ("deleted" if roll < 0.02 else ("unpublished" if roll < 0.03 else "published"))
        published = None if draft else iso(created + timedelta(minutes=rng.randint(1, 600)))
        author = f"dev-{rng.randint(0, 499)}"
        yield {
            "id": base_id + i,
            "repository": repo,
            "tag": tag,
            "name": f"{repo.split('/')[1]} {tag}",
            "author_login": author,
            "author_avatar_url": f"https://avatars.githubusercontent.com/u/{1000 + int(author[4:])}?v=4",
            "draft": draft,
            "prerelease": prerelease,
            "created_at": iso(created),
            "published_at": published,
            "html_url": f"https://github.com/{repo}/releases/tag/{tag}",
            "body": notes(rng, tag),
            "state": state,
        }


def delivery_body(event: str, action: str | None, repo: str, sender: str, extra: dict[str, Any]) -> bytes:
    payload: dict[str, Any] = {"action": action} if action else {"ref": "refs/heads/main"}
    payload |= {
        "repository": {"full_name": repo, "name": repo.split("/")[1], "private": False},
        "organization": {"login": repo.split("/")[0]},
        "sender": {"login": sender, "type": "User"},
        "installation": {"id": 4242},
    }
    return orjson.dumps(payload | extra)


def forward_jobs(
    rng: random.Random, seq: int, delivery_id: str, event: str, received: float, *, pending: bool
) -> list[tuple[Any, ...]]:
    """The forward_jobs rows of one event: (delivery_seq, delivery_id, destination, route, status, attempts,
    received_at, created_at, next_attempt_at, last_status_code, completed_at)."""
    destinations = ("ci", "chat") if event == "release" else (("ci",) if rng.random() < 0.8 else ())
    rows = []
    for destination in destinations:
        if pending:
            rows.append(
                (seq, delivery_id, destination, "seeded", "pending", 0, received, received, received, None, None)
            )
            continue
        dead = rng.random() < 0.005
        status, code = ("dead", 410) if dead else ("delivered", 200)
        done = received + 0.3
        rows.append((seq, delivery_id, destination, "seeded", status, 1, received, received, done, code, done))
    return rows


def seed(db: Path, *, events: int, releases: int, repos: int, seed_value: int, recent: int) -> dict[str, Any]:
    rng = random.Random(seed_value)
    names = repositories(repos)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    if conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]:
        raise SystemExit(f"{db}: not empty; seed a fresh database")
    started = time.perf_counter()
    release_list = list(release_rows(rng, names, releases, base_id=50_000_000))
    # Spread the release events evenly among the other events, in time order.
    release_at = sorted(range(events), key=lambda _: rng.random())[:releases]
    release_at.sort()
    slot_of = {seq_index: k for k, seq_index in enumerate(release_at)}
    weights = [w for _, _, w in OTHER_EVENTS]
    recent = min(recent, events)
    step = SPAN.total_seconds() / max(1, events - recent)
    t0 = START.timestamp()
    recent_from = max(time.time() - 86_400, t0 + SPAN.total_seconds())
    recent_step = 86_000 / max(1, recent)

    conn.execute("BEGIN")
    batch_d: list[tuple[Any, ...]] = []
    batch_e: list[tuple[Any, ...]] = []
    batch_c: list[tuple[Any, ...]] = []
    batch_j: list[tuple[Any, ...]] = []

    def flush() -> None:
        conn.executemany(
            "INSERT INTO deliveries (seq, delivery_id, event, hook_id, content_kind, headers, body, secret_index,"
            " received_at) VALUES (?, ?, ?, '424242', 'json', ?, ?, 0, ?)",
            [row[:6] for row in batch_d],
        )
        conn.executemany(  # the row the append trigger created: mark it as processed
            "UPDATE delivery_states SET status = ?, attempts = 1, processed_at = ?, error = ? WHERE seq = ?",
            [(*row[6:], row[0]) for row in batch_d],
        )
        conn.executemany(
            "INSERT INTO events (seq, delivery_id, event, action, repository, organization, sender,"
            " installation_id, hook_id, status, error, received_at, processed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 4242, 424242, ?, ?, ?, ?)",
            batch_e,
        )
        conn.executemany(
            "INSERT INTO release_changes (delivery_id, release_id, action, order_ts, order_seq, received_at, content)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            batch_c,
        )
        conn.executemany(
            "INSERT INTO forward_jobs (delivery_seq, delivery_id, destination, route, status, attempts, received_at,"
            " created_at, next_attempt_at, last_status_code, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch_j,
        )
        batch_d.clear()
        batch_e.clear()
        batch_c.clear()
        batch_j.clear()

    release_insert = (
        "INSERT INTO releases (id, repository, tag, name, author_login, author_avatar_url, draft, prerelease,"
        " created_at, published_at, html_url, body, state, sort_at, content_ts, content_seq, first_seen_at,"
        " updated_at) VALUES (:id, :repository, :tag, :name, :author_login, :author_avatar_url, :draft,"
        " :prerelease, :created_at, :published_at, :html_url, :body, :state, :sort_at, :content_ts, :content_seq,"
        " :first_seen_at, :updated_at)"
    )
    release_params: list[dict[str, Any]] = []
    for index in range(events):
        seq = index + 1
        old = events - recent
        received = t0 + index * step if index < old else recent_from + (index - old) * recent_step
        delivery_id = f"seed-{seq:08d}-{rng.getrandbits(32):08x}"
        failed = rng.random() < 0.01
        status = "failed" if failed else "processed"
        error = "PayloadMismatch: the payload has no repository" if failed else None
        k = slot_of.get(index)
        if k is not None:
            r = release_list[k]
            event, action, repo = (
                "release",
                {"draft": "created", "deleted": "deleted"}.get(r["state"], "published"),
                r["repository"],
            )
            sender = r["author_login"]
            content = {key: r[key] for key in (
                "repository", "tag", "name", "author_login", "author_avatar_url", "draft", "prerelease",
                "created_at", "published_at", "html_url", "body",
            )}  # fmt: skip
            body = delivery_body(event, action, repo, sender, {"release": {"id": r["id"], **content}})
            batch_c.append((delivery_id, r["id"], action, r["created_at"], seq, received, orjson.dumps(content)))
            release_params.append(
                r
                | {
                    "sort_at": r["published_at"] or r["created_at"],
                    "content_ts": r["created_at"],
                    "content_seq": seq,
                    "first_seen_at": received,
                    "updated_at": received,
                }
            )
            status, error = "processed", None
        else:
            event, actions, _ = rng.choices(OTHER_EVENTS, weights)[0]
            action = rng.choice(actions)
            repo = names[int(rng.paretovariate(1.1) * 5) % len(names)]
            sender = f"dev-{rng.randint(0, 499)}"
            body = delivery_body(event, action, repo, sender, {})
        headers = orjson.dumps(
            {
                "content-type": "application/json",
                "user-agent": "GitHub-Hookshot/044aadd",
                "x-github-delivery": delivery_id,
                "x-github-event": event,
                "x-github-hook-id": "424242",
            }
        )
        batch_d.append((seq, delivery_id, event, headers, body, received, status, received + 0.05, error))
        org = repo.split("/")[0]
        batch_e.append((seq, delivery_id, event, action, repo, org, sender, status, error, received, received + 0.05))
        if status == "processed":
            batch_j += forward_jobs(rng, seq, delivery_id, event, received, pending=events - index <= 50)
        if len(batch_d) >= 20_000:
            flush()
        if len(release_params) >= 20_000:
            conn.executemany(release_insert, release_params)
            release_params.clear()
    flush()
    conn.executemany(release_insert, release_params)
    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'deliveries'", (events,))
    if conn.execute("SELECT changes()").fetchone()[0] == 0:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('deliveries', ?)", (events,))
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {
        table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
        for table in ("deliveries", "events", "releases", "release_changes", "forward_jobs")
    }
    counts["repositories"] = conn.execute("SELECT count(DISTINCT repository) FROM releases").fetchone()[0]
    conn.close()
    counts["seconds"] = round(time.perf_counter() - started, 1)
    counts["size_mb"] = round(db.stat().st_size / 1e6)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True, help="a migrated, empty SQLite file")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--repos", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--recent", type=int, default=20_000, help="events in the 24 hours before now")
    args = parser.parse_args()
    print(orjson.dumps(seed(args.db, events=args.events, releases=args.releases, repos=args.repos,
                            seed_value=args.seed, recent=args.recent)).decode())  # fmt: skip


if __name__ == "__main__":
    main()
