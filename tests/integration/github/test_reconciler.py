"""The reconciler against the fake GitHub, over real HTTP: deliveries GitHub failed to send are found, requested
again, and seen arriving at a real ghingest receiver; a redelivery is never requested twice in a loop; refusals,
rate limits and a scheduled run in the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ghingest.app.reconciler import HookReport
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.core.reconcile import GapKind, GapState
from ghingest.ports.clock import ManualClock
from tests.conftest import SECRET, TOKEN, ThreadedServer, free_port, release, wait_until
from tests.dashboard_support import session_client
from tests.fake_github import FakeGitHub

REPO = "octo-org/hello-world"
DOWN = f"http://127.0.0.1:{free_port()}/webhooks/github"  # nothing listens there


def _settings(make_settings: Callable[..., Settings], fake: FakeGitHub, hooks: list[Any], **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "github_api_url": fake.api_url,
        "github_token": fake.add_token(),
        "reconcile_hooks": ",".join(h.ref.key for h in hooks),
        "reconcile_min_age": 0,
        "reconcile_interval": 0,
        "github_mutation_interval": 0,
    }
    values.update(extra)
    return make_settings(**values)


async def _reconcile(settings: Settings, *, dry_run: bool = False) -> list[HookReport]:
    runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
    await runtime.start()
    try:
        return await runtime.reconciler().run_once(dry_run=dry_run)
    finally:
        await runtime.stop()


def _issue(number: int) -> dict[str, Any]:
    return {"action": "opened", "issue": {"number": number}, "repository": {"full_name": REPO}}


def test_failed_deliveries_are_found_redelivered_and_seen_arriving(
    make_settings: Callable[..., Settings], fake_github: FakeGitHub
) -> None:
    fake = fake_github
    hook = fake.repo_hook(REPO, url=DOWN, secret=SECRET)
    other = fake.repo_hook(REPO, url=DOWN, secret=SECRET)  # a second hook subscribed to the same events
    settings = _settings(make_settings, fake, [hook])
    with (
        ThreadedServer(Runtime.build(settings)) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api,
    ):
        hook.url = other.url = server.url + "/webhooks/github"
        arrived = fake.deliver(hook, "release", release(release_id=1))
        assert arrived.status_code == 202
        hook.url = DOWN  # ghingest is unreachable: GitHub records the attempts as failed
        lost = [fake.deliver(hook, "issues", _issue(n)) for n in range(3)]
        assert {d.status_code for d in lost} == {0}
        # the other hook's copy of an event reached ghingest; this hook's copy of the same event did not
        shared = fake.deliver(other, "issues", _issue(99))
        assert shared.status_code == 202
        fake.record_delivery(hook, "issues", action="opened", guid=shared.guid, status_code=0, status="timed out",
                             payload=_issue(99))  # fmt: skip
        hook.url = server.url + "/webhooks/github"

        dry = asyncio.run(_reconcile(settings, dry_run=True))[0]
        assert sorted(dry.would_request) == sorted([d.guid for d in lost] + [shared.guid])
        assert fake.counters.redeliveries_requested == 0

        (report,) = asyncio.run(_reconcile(settings))
        assert (report.seen, report.found, report.requested, report.error) == (5, 4, 4, None)
        assert fake.counters.redeliveries_requested == 4
        fake.wait_redeliveries()
        for d in [*lost, arrived]:
            wait_until(lambda d=d: api.get(f"/api/deliveries/{d.guid}").status_code == 200)
        sightings = api.get(f"/api/deliveries/{shared.guid}").json()["sightings"]
        assert str(hook.id) in {s["hook_id"] for s in sightings}

        (again,) = asyncio.run(_reconcile(settings))
        assert (again.found, again.requested, again.arrived, again.still_missing) == (0, 0, 4, 0)
        gaps = api.get("/api/reconcile/gaps", params={"state": "arrived"}).json()
        assert {g["delivery_id"] for g in gaps["items"]} == {d.guid for d in lost} | {shared.guid}
        kinds = {g["delivery_id"]: g["kind"] for g in gaps["items"]}
        assert kinds[shared.guid] == GapKind.HOOK.value
        assert {kinds[d.guid] for d in lost} == {GapKind.LOST.value}
        assert gaps["counts"]["arrived"] == 4
        assert gaps["counts"]["missing"] == 0
        (scan,) = api.get("/api/reconcile/hooks").json()
        assert (scan["hook"], scan["error"]) == (hook.ref.key, None)
        with session_client(server) as browser:
            page = browser.get("/github", params={"gaps": "arrived"})
        assert page.status_code == 200
        assert shared.guid in page.text
        assert "other hook has it" in page.text


@pytest.mark.anyio
async def test_a_redelivery_that_never_arrives_is_asked_again_after_a_while_at_most_max_times(
    make_settings: Callable[..., Settings],
) -> None:
    clock = ManualClock()
    with FakeGitHub(clock=clock) as fake:
        hook = fake.repo_hook(REPO, url=DOWN, secret=SECRET)
        fake.deliver(hook, "issues", _issue(1))
        settings = _settings(make_settings, fake, [hook], database_url="memory://", reconcile_retry_after=900,
                             reconcile_max_requests=2)  # fmt: skip
        runtime = Runtime.build(settings, run_worker=False, generate_credentials=False, clock=clock)
        await runtime.start()
        try:
            reconciler = runtime.reconciler()
            requested = []
            for _ in range(12):  # an hour and a half of runs every 5 minutes
                (report,) = await reconciler.run_once()
                requested.append(report.requested)
                clock.advance(300)
            assert requested.count(1) == 2, requested  # asked twice, 15 minutes apart at least
            assert requested[0] == 1
            assert requested.index(1, 1) >= 3
            (gap,) = (await runtime.backend.github.list_gaps()).items
            assert (gap.state, gap.requests) == (GapState.GAVE_UP, 2)
            assert fake.counters.redeliveries_requested == 2
        finally:
            await runtime.stop()


@pytest.mark.anyio
async def test_github_refusing_a_redelivery_closes_the_gap_and_a_rate_limit_stops_the_run(
    make_settings: Callable[..., Settings],
) -> None:
    clock = ManualClock()
    with FakeGitHub(clock=clock, redelivery_window=86400) as fake:
        hook = fake.repo_hook(REPO, url=DOWN, secret=SECRET)
        fake.record_delivery(
            hook, "issues", action="opened", delivered_at=clock.now() - 2 * 86400, status_code=0, payload=_issue(1)
        )  # fmt: skip  (older than the fake's redelivery window)
        settings = _settings(make_settings, fake, [hook], database_url="memory://", reconcile_horizon=5 * 86400,
                             github_max_wait=60)  # fmt: skip
        runtime = Runtime.build(settings, run_worker=False, generate_credentials=False, clock=clock)
        await runtime.start()
        try:
            reconciler = runtime.reconciler()
            (report,) = await reconciler.run_once()
            assert (report.found, report.requested, report.refused) == (1, 0, 1)
            (gap,) = (await runtime.backend.github.list_gaps()).items
            assert gap.state is GapState.REFUSED
            assert gap.error
            assert SECRET not in gap.error

            fake.record_delivery(hook, "issues", action="opened", status_code=500, payload=_issue(2),
                                 delivered_at=clock.now() - 60)  # fmt: skip
            fake.set_rate_limit(0, token=settings.github_token.get_secret_value(), reset_at=clock.now() + 3600)
            (limited,) = await reconciler.run_once()
            assert limited.error is not None
            assert limited.requested == 0
            scan = await runtime.backend.github.get_scan(hook.ref.key)
            assert scan is not None
            assert scan.error == limited.error
        finally:
            await runtime.stop()


def test_the_server_reconciles_on_its_own_schedule(
    make_settings: Callable[..., Settings], fake_github: FakeGitHub
) -> None:
    fake = fake_github
    hook = fake.repo_hook(REPO, url=DOWN, secret=SECRET)
    lost = fake.deliver(hook, "issues", _issue(7))
    assert lost.status_code == 0
    settings = _settings(make_settings, fake, [hook], reconcile_interval=1.0)  # the first run: 1 s after start
    server = ThreadedServer(Runtime.build(settings))
    hook.url = server.url + "/webhooks/github"  # ghingest is back: its first scheduled run finds the gap
    with server, httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        wait_until(lambda: api.get(f"/api/deliveries/{lost.guid}").status_code == 200, timeout=15)
        wait_until(lambda: api.get("/api/reconcile/gaps", params={"state": "arrived"}).json()["items"], timeout=15)
        metrics = api.get("/metrics").text
        assert 'ghingest_reconcile_redeliveries_total{hook="' + hook.ref.key + '",result="requested"} 1.0' in metrics
        assert "ghingest_github_requests_total" in metrics


@pytest.mark.anyio
async def test_one_process_at_a_time_holds_the_schedule_and_another_takes_over_when_it_stops(
    make_settings: Callable[..., Settings],
) -> None:
    from ghingest.app.leases import Lease

    settings = make_settings()
    first, second = (Runtime.build(settings, run_worker=False, generate_credentials=False) for _ in range(2))
    first.backend.resources.upgrade()
    await first.start()
    await second.start()
    try:
        a = Lease(first.backend.github, "reconcile", holder="a")
        b = Lease(second.backend.github, "reconcile", holder="b")
        assert await a.renew()
        assert not await b.renew()
        assert a()
        assert not b()
        stop = asyncio.Event()
        stop.set()
        await a.keep(stop)  # stopping gives the lease up at once
        assert not a()
        assert await b.renew()
    finally:
        await first.stop()
        await second.stop()


def test_a_github_app_reconciles_its_own_hook_with_its_key(
    make_settings: Callable[..., Settings], fake_github: FakeGitHub, tmp_path: Any
) -> None:
    fake = fake_github
    app = fake.app()
    hook = fake.app_hook(app, url=DOWN, secret=SECRET)
    lost = fake.deliver(hook, "issues", _issue(3))
    key = tmp_path / "app.pem"
    key.write_text(app.private_key_pem)
    settings = make_settings(github_api_url=fake.api_url, github_app_id=app.app_id, github_app_private_key_file=key,
                             reconcile_hooks=hook.ref.key, reconcile_min_age=0, reconcile_interval=0,
                             github_mutation_interval=0)  # fmt: skip
    server = ThreadedServer(Runtime.build(settings, run_worker=True))
    hook.url = server.url + "/webhooks/github"
    with server, httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        (report,) = asyncio.run(_reconcile(settings))
        assert (report.found, report.requested, report.error) == (1, 1, None)
        fake.wait_redeliveries()
        wait_until(lambda: api.get(f"/api/deliveries/{lost.guid}").status_code == 200)
    assert fake.counters.unauthorized == 0
    assert app.private_key_pem not in repr(report)
