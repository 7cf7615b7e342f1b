"""The release tracker against the fake GitHub, on one `ManualClock`: new and changed releases enter the pipeline
as polled release deliveries, an unchanged repository costs no rate limit (304), rate limits are waited out, a
failing repository never stops the others, and a thousand repositories' polls spread over the interval."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from ghingest.adapters.github import GitHubClient
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.app.tracker import ReleaseTracker
from ghingest.core.sources import is_polled
from ghingest.ports import ReleaseQuery
from ghingest.ports.clock import ManualClock
from tests.conftest import TOKEN, ThreadedServer
from tests.dashboard_support import session_client
from tests.fake_github import FakeGitHub, Sleeper

pytestmark = pytest.mark.anyio
INTERVAL = 600.0


@pytest.fixture
async def runtime(make_settings: Callable[..., Settings], clock: ManualClock) -> AsyncIterator[Runtime]:
    built = Runtime.build(make_settings(database_url="memory://"), run_worker=False, clock=clock)
    await built.start()
    yield built
    await built.stop()


@pytest.fixture
async def client(fake: FakeGitHub, clock: ManualClock) -> AsyncIterator[GitHubClient]:
    made = GitHubClient(api_url=fake.api_url, token=fake.add_token(), clock=clock, sleep=Sleeper(clock))
    yield made
    await made.aclose()


def tracker_of(runtime: Runtime, client: GitHubClient, clock: ManualClock) -> ReleaseTracker:
    return ReleaseTracker(api=client, state=runtime.backend.github, inbox=runtime.backend.inbox, interval=INTERVAL,
                          metrics=runtime.metrics, clock=clock)  # fmt: skip


async def process_all(runtime: Runtime) -> None:
    worker = runtime.worker()
    while await worker.run_once():
        pass


async def test_new_and_changed_releases_enter_the_pipeline_and_unchanged_polls_cost_nothing(
    runtime: Runtime, client: GitHubClient, fake: FakeGitHub, clock: ManualClock
) -> None:
    first = fake.add_release("Octo-Org/Hello-World", "v1.0.0", body="first")
    fake.add_release("Octo-Org/Hello-World", "v1.1.0-rc1", prerelease=True)
    tracker = tracker_of(runtime, client, clock)
    (record,) = await tracker.add(["octo-org/hello-world"], added_by="cli")
    assert record.key == "octo-org/hello-world"

    result = await tracker.poll(record)
    assert (result.changed, result.not_modified, result.error) == (2, False, None)
    assert result.repository.full_name == "Octo-Org/Hello-World"  # as GitHub spells it
    await process_all(runtime)
    page = await runtime.backend.reads.list_releases(ReleaseQuery())
    assert {v.record.content.tag for v in page.items} == {"v1.0.0", "v1.1.0-rc1"}
    assert {v.record.content.repository for v in page.items} == {"Octo-Org/Hello-World"}
    assert all(is_polled(e.delivery_id) for v in page.items for e in v.record.history)

    costly = fake.counters.costly
    unchanged = await tracker.poll(result.repository)
    assert unchanged.not_modified
    assert unchanged.changed == 0
    assert fake.counters.costly == costly  # a 304 to a conditional request spends no rate limit
    assert fake.counters.not_modified >= 1

    fake.edit_release("Octo-Org/Hello-World", first["id"], body="first, fixed")
    edited = await tracker.poll(unchanged.repository)
    assert edited.changed == 1
    await process_all(runtime)
    view = await runtime.backend.reads.get_release(first["id"])
    assert view is not None
    assert view.record.content.body == "first, fixed"
    assert [e.action for e in view.record.history] == ["published", "edited"]
    assert edited.repository.polls == 3
    assert edited.repository.not_modified == 1


async def test_a_secondary_rate_limit_is_waited_out_and_a_missing_repository_fails_alone(
    runtime: Runtime, client: GitHubClient, fake: FakeGitHub, clock: ManualClock
) -> None:
    fake.add_release("octo-org/one", "v1")
    tracker = tracker_of(runtime, client, clock)
    one, gone = await tracker.add(["octo-org/one", "octo-org/gone"], added_by="config")
    fake.fail_next(1, status=403, retry_after=30, path_prefix="/repos/octo-org/one")
    before = clock.now()
    ok = await tracker.poll(one)
    assert ok.error is None
    assert ok.changed == 1
    assert clock.now() - before >= 30  # waited the Retry-After (on the test's clock)
    missing = await tracker.poll(gone)
    assert missing.error is not None
    assert missing.repository.last_status == 404
    saved = await runtime.backend.github.get_tracked("octo-org/gone")
    assert saved is not None
    assert saved.last_error == missing.error
    assert saved.next_poll_at > clock.now()


async def test_config_sync_adds_and_drops_only_configured_repositories(
    runtime: Runtime, client: GitHubClient, clock: ManualClock
) -> None:
    tracker = tracker_of(runtime, client, clock)
    await tracker.add(["octo-org/by-hand"], added_by="cli")
    await tracker.sync_config(["octo-org/a", "octo-org/b"])
    await tracker.sync_config(["octo-org/b"])
    keys = {t.key: t.added_by for t in await runtime.backend.github.list_tracked()}
    assert keys == {"octo-org/by-hand": "cli", "octo-org/b": "config"}


async def test_polls_of_many_repositories_spread_over_the_interval(
    runtime: Runtime, client: GitHubClient, fake: FakeGitHub, clock: ManualClock
) -> None:
    names = [f"octo-org/repo-{n}" for n in range(120)]
    for name in names:
        fake.add_repository(name)
    tracker = tracker_of(runtime, client, clock)
    await tracker.add(names, added_by="config")
    per_minute: Counter[int] = Counter()
    polled: dict[str, list[float]] = {}
    start = clock.now()
    for _ in range(int(2 * INTERVAL / 10) + 1):  # two intervals, in steps of 10 s
        for result in await tracker.poll_due():
            per_minute[int((clock.now() - start) // 60)] += 1
            polled.setdefault(result.repository.key, []).append(clock.now())
        clock.advance(10)
    assert set(polled) == {n.lower() for n in names}
    for times in polled.values():  # each repository keeps its slot: one poll per interval
        assert len(times) >= 2
        assert all(abs(b - a - INTERVAL) <= 10 for a, b in itertools.pairwise(times))
    assert max(per_minute.values()) <= 3 * 120 * 60 / INTERVAL  # no burst: ~12 a minute, 36 at most


def test_the_github_page_and_the_api_show_the_tracked_repositories_and_their_last_poll(
    make_settings: Callable[..., Settings], fake_github: FakeGitHub
) -> None:
    fake_github.add_release("Octo-Org/Shown", "v1")
    settings = make_settings(github_api_url=fake_github.api_url, github_token=fake_github.add_token())

    async def poll_twice() -> None:
        runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
        runtime.backend.resources.upgrade()
        await runtime.start()
        try:
            (record,) = await runtime.tracker().add(["octo-org/shown"], added_by="cli")
            first = await runtime.tracker().poll(record)
            await runtime.tracker().poll(first.repository)
        finally:
            await runtime.stop()

    asyncio.run(poll_twice())
    with ThreadedServer(Runtime.build(settings)) as server:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            (tracked,) = api.get("/api/tracked-repositories").json()
        assert (tracked["repository"], tracked["last_status"], tracked["not_modified"]) == ("Octo-Org/Shown", 304, 1)
        with session_client(server) as browser:
            page = browser.get("/github")
        assert page.status_code == 200
        assert "Octo-Org/Shown" in page.text
        assert "304 not modified" in page.text
