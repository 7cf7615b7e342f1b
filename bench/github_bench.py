"""Issue 11's figures: reconciling a hook with 10,000 deliveries in its window (wall time, CPU, API requests), and
polling 1,000 tracked repositories for an hour when nothing changed (requests, and what they cost in rate limit).

Both run against the fake GitHub of the tests (tests/fake_github: a real HTTP server on 127.0.0.1), with the real
GitHub client (gidgethub over httpx) and a real SQLite store. The polling hour runs on a `ManualClock` that the
tracker and the fake share (every request is a real one; only the waiting between polls is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fake_github import FakeGitHub, Sleeper

from ghingest.adapters.factory import open_backend
from ghingest.adapters.github import GitHubClient
from ghingest.app.reconciler import Reconciler
from ghingest.app.settings import load_settings
from ghingest.app.tracker import ReleaseTracker
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.reconcile import ReconcilePolicy
from ghingest.ports.clock import ManualClock

REPO = "octo-org/hello-world"
DOWN = "http://127.0.0.1:9/webhooks/github"  # redeliveries go nowhere: the figure is reconciliation's own


def _incoming(guid: str, hook_id: int) -> IncomingDelivery:
    headers = {"x-github-event": "issues", "x-github-delivery": guid, "x-github-hook-id": str(hook_id),
               "content-type": "application/json"}  # fmt: skip
    body = b'{"action":"opened","issue":{"number":1}}'
    return IncomingDelivery(guid, "issues", str(hook_id), ContentKind.JSON, headers, body, 0)


async def reconcile_bench(count: int, gap_ratio: float, folder: Path) -> list[str]:
    settings = load_settings(database_url=f"sqlite:///{folder / 'reconcile.db'}", data_dir=folder / "data",
                             webhook_secrets="bench-secret-0123")  # fmt: skip
    backend = open_backend(settings)
    backend.resources.upgrade()
    await backend.resources.start()
    lines = []
    with FakeGitHub() as fake:
        token = fake.add_token()
        hook = fake.repo_hook(REPO, url=DOWN, secret="bench-secret-0123")
        now = time.time()
        every = int(1 / gap_ratio)
        recorded = []
        for i in range(count):
            d = fake.record_delivery(hook, "issues", action="opened", delivered_at=now - 300 - i * 25,
                                     status_code=0 if i % every == 0 else 200,
                                     payload={"action": "opened"})  # fmt: skip
            if i % every != 0:
                recorded.append(d.guid)
        for start in range(0, len(recorded), 500):
            await asyncio.gather(*(backend.inbox.append(_incoming(g, hook.id), received_at=now)
                                   for g in recorded[start : start + 500]))  # fmt: skip
        gaps = count - len(recorded)
        client = GitHubClient(api_url=fake.api_url, token=token, mutation_interval=0)
        reconciler = Reconciler(hooks=[hook.ref], api=client, state=backend.github, reads=backend.reads,
                                policy=ReconcilePolicy(min_age=0))  # fmt: skip
        for label in ("first run (whole window)", "second run (incremental)"):
            cpu, wall = time.process_time(), time.perf_counter()
            (report,) = await reconciler.run_once()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            lines.append(
                f"reconcile {count} deliveries, {gaps} gaps, {label}: {wall:.2f} s wall, {cpu:.2f} s CPU,"
                f" {report.requests} API requests ({report.requested} redeliveries), {report.seen} judged,"
                f" {report.found} new gaps"
            )
        lines.append(
            f"  (with the default GHINGEST_GITHUB_MUTATION_INTERVAL=1.0 the first run's {gaps} redelivery requests are"
            f" spaced 1 s apart: +{gaps} s)"
        )
        await client.aclose()
    await backend.resources.close()
    return lines


async def tracking_bench(repositories: int, interval: float, folder: Path) -> list[str]:
    settings = load_settings(database_url=f"sqlite:///{folder / 'track.db'}", data_dir=folder / "data",
                             webhook_secrets="bench-secret-0123")  # fmt: skip
    clock = ManualClock(time.time())
    backend = open_backend(settings, clock=clock)
    backend.resources.upgrade()
    await backend.resources.start()
    lines = []
    with FakeGitHub(clock=clock) as fake:
        token = fake.add_token()
        names = [f"octo-org/repo-{n}" for n in range(repositories)]
        for name in names:
            fake.add_release(name, "v1.0.0")
            fake.add_release(name, "v1.1.0")
        client = GitHubClient(api_url=fake.api_url, token=token, clock=clock, sleep=Sleeper(clock))
        tracker = ReleaseTracker(api=client, state=backend.github, inbox=backend.inbox, interval=interval,
                                 concurrency=4, clock=clock)  # fmt: skip
        await tracker.add(names, added_by="config")

        async def hour(label: str) -> None:
            before = fake.counters.requests, fake.counters.costly, fake.counters.not_modified
            cpu, wall, polls = time.process_time(), time.perf_counter(), 0
            end = clock.now() + 3600
            while clock.now() < end:
                polls += len(await tracker.poll_due())
                clock.advance(5)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            requests = fake.counters.requests - before[0]
            costly = fake.counters.costly - before[1]
            free = fake.counters.not_modified - before[2]
            lines.append(
                f"track {repositories} repositories every {interval:.0f} s, {label}: {polls} polls, {requests}"
                f" requests/hour, {costly} of them cost rate limit, {free} answered 304;"
                f" {1000 * cpu / max(polls, 1):.2f} ms CPU per poll, the fake's included ({wall:.1f} s wall for the"
                f" simulated hour)"
            )

        await hour("first hour (first polls: 200s)")
        await hour("an hour with nothing changed")
        await client.aclose()
    await backend.resources.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--gap-ratio", type=float, default=0.01)
    parser.add_argument("--repositories", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=600.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ghingest-github-bench-") as tmp:
        lines = asyncio.run(reconcile_bench(args.deliveries, args.gap_ratio, Path(tmp)))
        lines += asyncio.run(tracking_bench(args.repositories, args.interval, Path(tmp)))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
