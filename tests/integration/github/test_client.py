"""`GitHubClient` against the fake GitHub over real HTTP on 127.0.0.1: pagination, redelivery (the webhook arriving
at a real receiver), conditional requests, the rate limits' waits and their bounds, retries, refusals, App JWTs and
installation tokens, mutation spacing, and credentials kept out of every message."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from ghingest.adapters.github import (
    AppCredentials,
    GitHubAuthError,
    GitHubClient,
    GitHubRateLimited,
    GitHubRefused,
    GitHubUnavailable,
    RequestRecord,
)
from ghingest.core import signature
from ghingest.core.github_hooks import HookDelivery, HookKind, HookRef
from ghingest.ports.clock import ManualClock
from tests.conftest import free_port, release
from tests.destinations import Answer, Destination
from tests.fake_github import FakeGitHub, Sleeper

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., GitHubClient]
REPO = "Octo-Org/Hello-World"
SECRET = "hook-secret"


async def all_pages(client: GitHubClient, hook: HookRef, **options: Any) -> list[list[HookDelivery]]:
    return [list(page) async for page in client.hook_deliveries(hook, **options)]


# --- deliveries ---------------------------------------------------------------------------------------------------


async def test_deliveries_page_newest_first_through_the_link_header_and_stop_after_since(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock, records: list[RequestRecord]
) -> None:
    token = fake.add_token()
    hook = fake.repo_hook(REPO)
    start = clock.now() - 3600
    recorded = [
        fake.record_delivery(hook, "release", action="published", delivered_at=start + i, status_code=200)
        for i in range(250)
    ]
    client = make_client(token=token)

    pages = await all_pages(client, hook.ref)
    assert [len(p) for p in pages] == [100, 100, 50]
    listed = [d for page in pages for d in page]
    assert [d.id for d in listed] == [d.id for d in reversed(recorded)]
    assert all(d.event == "release" and d.action == "published" and d.succeeded for d in listed)
    assert fake.route_count("GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries") == 3
    assert "cursor=" in fake.seen[-1].query

    # `since` within the second page: that page is the last one read.
    records.clear()
    pages = await all_pages(client, hook.ref, since=start + 120, per_page=100)
    assert [len(p) for p in pages] == [100, 100]
    assert [r.route for r in records] == ["/repos/{owner}/{repo}/hooks/{hook_id}/deliveries"] * 2
    assert len(await all_pages(client, hook.ref, since=start + 201, per_page=25)) == 2

    empty = fake.repo_hook(REPO)
    assert await all_pages(client, empty.ref) == []


async def test_organization_hooks_and_a_ghes_base_url(clock: ManualClock, sleeper: Sleeper) -> None:
    with FakeGitHub(clock=clock, api_prefix="/api/v3") as ghes:
        token = ghes.add_token()
        hook = ghes.org_hook("octo-org")
        for i in range(5):
            ghes.record_delivery(hook, "push", delivered_at=clock.now() - 10 * i)
        async with GitHubClient(api_url=ghes.api_url, token=token, clock=clock, sleep=sleeper) as client:
            pages = await all_pages(client, hook.ref, per_page=2)
        assert [len(p) for p in pages] == [2, 2, 1]
        assert ghes.route_count("GET /orgs/{org}/hooks/{hook_id}/deliveries") == 3
        assert all(seen.path.startswith("/orgs/") for seen in ghes.seen)


async def test_items_not_shaped_as_documented_are_skipped_and_a_foreign_next_link_refused(clock: ManualClock) -> None:
    good = {"id": 7, "guid": "g-7", "delivered_at": "2024-05-15T15:19:25Z", "status_code": 200, "event": "ping"}

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"link": '<https://elsewhere.example/app/hook/deliveries?cursor=v1_7>; rel="next"'}
        return httpx.Response(200, json=[good, {"id": "8"}, None, {**good, "guid": ""}], headers=headers)

    async with GitHubClient(token="t", clock=clock, transport=httpx.MockTransport(answer)) as client:
        pages = client.hook_deliveries(HookRef.parse("repo:octo-org/hello:1"))
        first = await anext(pages)
        assert [d.id for d in first] == [7]
        with pytest.raises(GitHubUnavailable, match="origin"):
            await anext(pages)


async def test_a_redelivery_is_accepted_and_arrives_at_the_receiver(fake: FakeGitHub, make_client: MakeClient) -> None:
    token = fake.add_token()
    with Destination(secret=SECRET) as receiver:
        hook = fake.repo_hook(REPO, receiver.url, secret=SECRET)
        first = fake.deliver(hook, "release", release(action="published"))
        assert (first.status_code, first.status, first.redelivery) == (200, "OK", False)

        client = make_client(token=token)
        await client.redeliver(hook.ref, first.id)
        fake.wait_redeliveries()

        assert [r.headers["x-github-delivery"] for r in receiver.accepted] == [first.guid, first.guid]
        original, again = receiver.accepted
        assert again.body == original.body
        assert again.headers["x-hub-signature-256"] == signature.sign(again.body, SECRET.encode())
        assert again.headers["x-github-event"] == "release"
        assert again.headers["x-github-hook-id"] == str(hook.id)
        assert again.headers["x-github-hook-installation-target-type"] == "repository"
        assert again.headers["user-agent"].startswith("GitHub-Hookshot/")
        assert orjson.loads(again.body)["action"] == "published"

    newest = (await all_pages(client, hook.ref))[0]
    assert [(d.guid, d.redelivery, d.status_code) for d in newest] == [
        (first.guid, True, 200),
        (first.guid, False, 200),
    ]
    assert fake.counters.redeliveries_requested == fake.counters.redeliveries_sent == 1


async def test_a_receiver_that_is_down_or_failing_is_listed_as_such(fake: FakeGitHub, make_client: MakeClient) -> None:
    down = fake.repo_hook(REPO, f"http://127.0.0.1:{free_port()}/hook")
    assert (fake.deliver(down, "ping", {"zen": "x"}).status_code, fake.deliver(down, "ping", {}).status) == (
        0,
        "timed out",
    )
    with Destination(lambda _r: Answer(status=503)) as failing:
        hook = fake.repo_hook(REPO, failing.url)
        attempt = fake.deliver(hook, "ping", {"zen": "x"})
    assert (attempt.status_code, attempt.status) == (503, "Invalid HTTP Response: 503")
    [[listed]] = await all_pages(make_client(token=fake.add_token()), hook.ref)
    assert (listed.status_code, listed.succeeded) == (503, False)


async def test_redelivery_refusals_keep_githubs_message(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock
) -> None:
    client = make_client(token=fake.add_token())
    hook = fake.repo_hook(REPO)
    old = fake.record_delivery(hook, "push", delivered_at=clock.now() - 3 * 86400 - 60)
    with pytest.raises(GitHubRefused) as too_old:
        await client.redeliver(hook.ref, old.id)
    assert too_old.value.status == 422
    assert "too old" in str(too_old.value)
    with pytest.raises(GitHubRefused) as unknown:
        await client.redeliver(hook.ref, 99)
    assert unknown.value.status == 404
    assert "Not Found" in str(unknown.value)
    assert type(unknown.value) is GitHubRefused
    assert fake.counters.redeliveries_requested == 0


async def test_mutations_are_sent_one_at_a_time_a_second_apart(
    fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper
) -> None:
    with Destination() as receiver:
        hook = fake.repo_hook(REPO, receiver.url)
        sent = [fake.record_delivery(hook, "push", payload={"n": n}) for n in range(3)]
        client = make_client(token=fake.add_token(), mutation_interval=1.0)
        await asyncio.gather(*(client.redeliver(hook.ref, d.id) for d in sent))
        await client.repository(REPO)  # a GET: not spaced
        fake.wait_redeliveries()
        assert sorted(orjson.loads(r.body)["n"] for r in receiver.accepted) == [0, 1, 2]
    assert sleeper.waits == [1.0, 1.0]


# --- releases -----------------------------------------------------------------------------------------------------


async def test_an_unchanged_releases_list_is_a_304_that_costs_no_rate_limit(
    fake: FakeGitHub, make_client: MakeClient, records: list[RequestRecord]
) -> None:
    token = fake.add_token()
    fake.add_release(REPO, "v1.0.0", body="first")
    client = make_client(token=token)

    first = await client.releases(REPO.lower(), etag=None)
    assert (first.status, first.not_modified) == (200, False)
    assert first.value is not None
    assert [r["tag_name"] for r in first.value] == ["v1.0.0"]
    assert first.etag is not None
    assert first.etag.startswith('"')
    spent = fake.counters.costly
    remaining = client.rate_limit.remaining if client.rate_limit else None

    again = await client.releases(REPO, etag=first.etag)
    assert (again.status, again.not_modified, again.value, again.etag) == (304, True, None, first.etag)
    assert fake.counters.costly == spent
    assert fake.counters.not_modified == 1
    assert client.rate_limit is not None
    assert client.rate_limit.remaining == remaining
    assert records[-1] == RequestRecord("GET", "/repos/{owner}/{repo}/releases", 304, True, records[-1].duration)

    fake.add_release(REPO, "v1.1.0")
    changed = await client.releases(REPO, etag=first.etag)
    assert changed.status == 200
    assert changed.value is not None
    assert [r["tag_name"] for r in changed.value] == ["v1.1.0", "v1.0.0"]
    assert changed.etag != first.etag
    edited = fake.edit_release(REPO, changed.value[0]["id"], body="edited")
    after_edit = await client.releases(REPO, etag=changed.etag)
    assert after_edit.value is not None
    assert after_edit.value[0]["body"] == edited["body"] == "edited"


async def test_a_public_repository_and_its_releases_without_credentials(
    fake: FakeGitHub, make_client: MakeClient
) -> None:
    fake.add_repository(REPO)
    fake.add_release(REPO, "v2.0.0")
    fake.add_release(REPO, "v2.1.0-draft", draft=True)
    client = make_client()
    repo = await client.repository("octo-org/hello-world")
    assert (repo["full_name"], repo["private"], repo["owner"]["login"]) == (REPO, False, "Octo-Org")
    listed = await client.releases(REPO, etag=None, per_page=10)
    assert listed.value is not None
    assert [r["tag_name"] for r in listed.value] == ["v2.0.0"]  # drafts only with access
    assert all("authorization" not in seen.headers for seen in fake.seen)
    assert client.rate_limit is not None
    assert client.rate_limit.limit == 60

    fake.add_repository("octo-org/secret", private=True)
    with pytest.raises(GitHubRefused) as hidden:
        await client.repository("octo-org/secret")
    assert hidden.value.status == 404


async def test_requests_carry_githubs_headers_and_records_name_routes_not_repositories(
    fake: FakeGitHub, make_client: MakeClient, records: list[RequestRecord]
) -> None:
    token = fake.add_token()
    fake.add_release(REPO, "v1")
    client = make_client(token=token, user_agent="ghingest-test")
    await client.repository(REPO)
    await client.releases(REPO, etag=None)
    for seen in fake.seen:
        assert seen.headers["authorization"] == f"Bearer {token}"
        assert seen.headers["accept"] == "application/vnd.github+json"
        assert seen.headers["x-github-api-version"] == "2022-11-28"
        assert seen.headers["user-agent"] == "ghingest-test"
    assert [(r.method, r.route, r.status, r.not_modified) for r in records] == [
        ("GET", "/repos/{owner}/{repo}", 200, False),
        ("GET", "/repos/{owner}/{repo}/releases", 200, False),
    ]
    assert client.requests == 2


# --- rate limits --------------------------------------------------------------------------------------------------


async def test_the_primary_limit_waits_until_the_reset(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock, sleeper: Sleeper
) -> None:
    token = fake.add_token()
    fake.add_repository(REPO)
    fake.set_rate_limit(0, token=token, reset_at=clock.now() + 30)
    client = make_client(token=token)
    repo = await client.repository(REPO)
    assert repo["full_name"] == REPO
    assert sleeper.waits == [31.0]
    assert fake.counters.rate_limited == 1
    assert client.requests == 2
    assert client.rate_limit is not None
    assert client.rate_limit.remaining == 4999


async def test_the_reserve_holds_the_next_request_until_the_reset(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock, sleeper: Sleeper
) -> None:
    token = fake.add_token()
    fake.add_repository(REPO)
    fake.set_rate_limit(11, token=token, reset_at=clock.now() + 45)
    client = make_client(token=token)
    await client.repository(REPO)  # leaves 10: the reserve
    assert sleeper.waits == []
    await client.repository(REPO)
    assert sleeper.waits == [46.0]
    assert fake.counters.rate_limited == 0

    fake.set_rate_limit(3, token=token, reset_at=clock.now() + 3000)
    await client.repository(REPO)  # learns of the low window
    before = client.requests
    with pytest.raises(GitHubRateLimited) as limited:
        await client.repository(REPO)
    assert limited.value.retry_at == pytest.approx(clock.now() + 3001)
    assert client.requests == before  # nothing sent


@pytest.mark.parametrize("status", [403, 429])
async def test_a_secondary_limit_with_retry_after_waits_and_retries(
    status: int, fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper
) -> None:
    token = fake.add_token()
    fake.add_repository(REPO)
    fake.fail_next(1, status=status, retry_after=7)
    client = make_client(token=token)
    assert (await client.repository(REPO))["full_name"] == REPO
    assert sleeper.waits == [7.0]
    assert fake.counters.faults == 1


async def test_a_secondary_limit_without_retry_after_waits_a_minute_then_longer(
    fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper
) -> None:
    token = fake.add_token()
    hook = fake.repo_hook(REPO)
    fake.record_delivery(hook, "push")
    fake.fail_next(2, status=403, path_prefix="/repos/")
    pages = await all_pages(make_client(token=token), hook.ref)
    assert len(pages) == 1
    assert sleeper.waits == [60.0, 120.0]


async def test_a_wait_beyond_max_wait_raises_rate_limited_with_retry_at(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock, sleeper: Sleeper
) -> None:
    token = fake.add_token()
    fake.add_repository(REPO)
    client = make_client(token=token, max_wait=900.0)
    fake.fail_next(1, status=429, retry_after=3600)
    with pytest.raises(GitHubRateLimited) as secondary:
        await client.repository(REPO)
    assert secondary.value.retry_at == pytest.approx(clock.now() + 3600)
    assert secondary.value.status == 429

    fake.set_rate_limit(0, token=token, reset_at=clock.now() + 1800)
    with pytest.raises(GitHubRateLimited) as primary:
        await client.releases(REPO, etag=None)
    assert primary.value.retry_at == pytest.approx(clock.now() + 1801)
    assert primary.value.status == 403
    assert sleeper.waits == []


async def test_a_limit_that_outlasts_the_retries_raises_rate_limited(
    fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper
) -> None:
    fake.add_repository(REPO)
    fake.fail_next(5, status=429, retry_after=2)
    with pytest.raises(GitHubRateLimited) as limited:
        await make_client(token=fake.add_token(), max_retries=2).repository(REPO)
    assert limited.value.retry_at is not None
    assert sleeper.waits == [2.0, 2.0]


# --- failures -----------------------------------------------------------------------------------------------------


async def test_server_errors_are_retried_with_backoff_then_unavailable(
    fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper, records: list[RequestRecord]
) -> None:
    fake.add_repository(REPO)
    client = make_client(token=fake.add_token(), max_retries=3)
    fake.fail_next(2, status=502)
    assert (await client.repository(REPO))["name"] == "Hello-World"
    assert sleeper.waits == [1.0, 2.0]
    assert [r.status for r in records] == [502, 502, 200]

    sleeper.waits.clear()
    fake.fail_next(4, status=503)
    with pytest.raises(GitHubUnavailable) as unavailable:
        await client.repository(REPO)
    assert unavailable.value.status == 503
    assert unavailable.value.retry_at is None
    assert sleeper.waits == [1.0, 2.0, 4.0]


async def test_no_answer_is_retried_then_unavailable(
    fake: FakeGitHub, make_client: MakeClient, sleeper: Sleeper
) -> None:
    client = make_client(api_url=f"http://127.0.0.1:{free_port()}", token="t", max_retries=2)
    with pytest.raises(GitHubUnavailable) as refused:
        await client.repository(REPO)
    assert refused.value.status == 0
    assert "ConnectError" in str(refused.value)
    assert sleeper.waits == [1.0, 2.0]
    assert client.requests == 3

    fake.add_repository(REPO)
    fake.fail_next(1, delay=0.6)
    slow = make_client(token=fake.add_token(), timeout=0.2)
    assert (await slow.repository(REPO))["id"] > 0  # the first attempt timed out


async def test_refusals_keep_the_status_and_the_message(fake: FakeGitHub, make_client: MakeClient) -> None:
    client = make_client(token=fake.add_token())
    with pytest.raises(GitHubRefused) as missing:
        await client.repository("octo-org/missing")
    assert (missing.value.status, missing.value.retry_at) == (404, None)
    assert "GET /repos/octo-org/missing answered 404: Not Found" in str(missing.value)
    fake.fail_next(1, status=410, message="Gone for good " + "x" * 1000)
    with pytest.raises(GitHubRefused) as gone:
        await client.repository(REPO)
    assert gone.value.status == 410
    assert len(str(gone.value)) <= 300
    with pytest.raises(ValueError, match="OWNER/REPO"):
        await client.releases("not a repository", etag=None)


async def test_a_bad_token_is_an_auth_error_without_the_token(fake: FakeGitHub, make_client: MakeClient) -> None:
    fake.add_repository(REPO)
    secret_token = "ghp_not-a-real-token-0123456789"
    client = make_client(token=secret_token)
    with pytest.raises(GitHubAuthError) as refused:
        await client.repository(REPO)
    assert refused.value.status == 401
    assert "Bad credentials" in str(refused.value)
    for text in (str(refused.value), repr(refused.value), repr(client)):
        assert secret_token not in text
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


# --- GitHub Apps --------------------------------------------------------------------------------------------------


async def test_the_app_hook_is_read_with_the_apps_jwt(fake: FakeGitHub, make_client: MakeClient) -> None:
    app = fake.app()
    hook = fake.app_hook(app)
    fake.record_delivery(hook, "installation", action="created", installation_id=4242)
    client = make_client(app=app.credentials)
    [[delivery]] = await all_pages(client, HookRef(HookKind.APP))
    assert (delivery.event, delivery.action) == ("installation", "created")
    assert fake.seen[-1].headers["authorization"].startswith("Bearer ey")

    # The JWT is kept and replaced well before it expires.
    await all_pages(client, HookRef(HookKind.APP))
    assert len({seen.headers["authorization"] for seen in fake.seen}) == 1
    client_clock = fake.clock
    assert isinstance(client_clock, ManualClock)
    client_clock.advance(8 * 60)
    await all_pages(client, HookRef(HookKind.APP))
    assert len({seen.headers["authorization"] for seen in fake.seen}) == 2

    with pytest.raises(GitHubAuthError):
        await all_pages(make_client(token=fake.add_token()), HookRef(HookKind.APP))


async def test_app_credentials_that_do_not_work_are_auth_errors_without_the_key(
    fake: FakeGitHub, make_client: MakeClient
) -> None:
    app, other = fake.app(), fake.app()
    fake.app_hook(app)
    wrong_key = AppCredentials(app_id=app.app_id, private_key=other.private_key_pem)
    with pytest.raises(GitHubAuthError) as refused:
        await all_pages(make_client(app=wrong_key), HookRef(HookKind.APP))
    assert refused.value.status == 401
    assert "JSON web token" in str(refused.value)

    with pytest.raises(GitHubAuthError) as not_pem:
        await all_pages(make_client(app=AppCredentials(app.app_id, "-----BEGIN nonsense")), HookRef(HookKind.APP))
    assert not_pem.value.status == 0

    key_line = app.private_key_pem.splitlines()[1]
    for text in (str(refused.value), repr(refused.value), str(not_pem.value), repr(app.credentials)):
        assert key_line not in text
        assert "PRIVATE KEY" not in text


async def test_installation_tokens_are_kept_until_five_minutes_before_they_expire(
    fake: FakeGitHub, make_client: MakeClient, clock: ManualClock
) -> None:
    app = fake.app()
    fake.add_repository(REPO, private=True)
    fake.install(app, "octo-org")
    hook = fake.repo_hook(REPO)
    fake.record_delivery(hook, "push")
    fake.add_release(REPO, "v1", draft=True)
    client = make_client(app=app.credentials)

    for _ in range(3):
        assert len((await all_pages(client, hook.ref))[0]) == 1
    listed = await client.releases(REPO, etag=None)
    assert listed.value is not None
    assert [r["tag_name"] for r in listed.value] == ["v1"]  # a draft: the installation has access
    assert fake.route_count("GET /repos/{owner}/{repo}/installation") == 1
    assert fake.route_count("POST /app/installations/{installation_id}/access_tokens") == 1
    tokens = {s.headers["authorization"] for s in fake.seen if s.route.startswith("/repos/{owner}/{repo}/h")}
    assert len(tokens) == 1
    assert tokens.pop().startswith("Bearer ghs_")

    clock.advance(fake.token_ttl - 300 - 1)
    await client.repository(REPO)
    assert fake.route_count("POST /app/installations/{installation_id}/access_tokens") == 1
    clock.advance(2)
    await client.repository(REPO)
    assert fake.route_count("POST /app/installations/{installation_id}/access_tokens") == 2
    assert fake.route_count("GET /repos/{owner}/{repo}/installation") == 1  # the installation is kept per owner


async def test_organization_hooks_through_the_apps_installation_and_repositories_it_lacks(
    fake: FakeGitHub, make_client: MakeClient
) -> None:
    app = fake.app()
    installation = fake.install(app, "octo-org")
    hook = fake.org_hook("octo-org")
    fake.record_delivery(hook, "push")
    client = make_client(app=app.credentials)
    assert len((await all_pages(client, hook.ref))[0]) == 1
    assert fake.route_count("GET /orgs/{org}/installation") == 1

    # A public repository of an owner without the App: read without a credential.
    fake.add_release("someone/else", "v9")
    listed = await client.releases("someone/else", etag=None)
    assert listed.value is not None
    assert [r["tag_name"] for r in listed.value] == ["v9"]
    assert "authorization" not in fake.seen[-1].headers
    elsewhere = fake.repo_hook("someone/else")
    with pytest.raises(GitHubAuthError, match="not installed"):
        await all_pages(client, elsewhere.ref)

    # An installation removed: its token stops working; the next call finds no installation.
    fake.uninstall(installation)
    with pytest.raises(GitHubAuthError) as revoked:
        await all_pages(client, hook.ref)
    assert revoked.value.status == 401
    with pytest.raises(GitHubAuthError, match="not installed"):
        await all_pages(client, hook.ref)


async def test_an_installation_on_selected_repositories(fake: FakeGitHub, make_client: MakeClient) -> None:
    app = fake.app()
    fake.add_repository("octo-org/other", private=True)
    fake.install(app, "octo-org", repositories=[REPO])
    outside, inside = fake.repo_hook("octo-org/other"), fake.repo_hook(REPO)
    fake.record_delivery(inside, "push")
    client = make_client(app=app.credentials)
    with pytest.raises(GitHubAuthError, match="not installed on octo-org/other"):
        await all_pages(client, outside.ref)
    assert len((await all_pages(client, inside.ref))[0]) == 1  # the owner's other repository is asked about


async def test_a_token_and_app_credentials_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        GitHubClient(token="t", app=AppCredentials("1", "key"))
