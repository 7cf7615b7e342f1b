"""The fake GitHub itself, spoken to with plain httpx: the shapes and rules the client's tests rely on (pagination,
rate-limit headers and costs, JWT verification, token expiry, redelivery answers, Hookshot's requests)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from ghingest.core import signature
from ghingest.ports.clock import ManualClock
from tests.destinations import Destination
from tests.fake_github import FakeGitHub

REPO = "octo-org/hello"


def get(fake: FakeGitHub, path: str, *, auth: str | None = None, **headers: str) -> httpx.Response:
    if auth is not None:
        headers["authorization"] = f"Bearer {auth}"
    return httpx.get(fake.api_url + path, headers=headers, timeout=10)


def test_the_fixture_lists_deliveries_as_github_does(fake_github: FakeGitHub) -> None:
    token = fake_github.add_token()
    hook = fake_github.repo_hook(REPO)
    for _ in range(150):
        fake_github.record_delivery(hook, "push")
    path = f"/repos/{REPO}/hooks/{hook.id}/deliveries"

    default = get(fake_github, path, auth=token)
    assert len(default.json()) == 30
    assert set(default.json()[0]) == {
        "id", "guid", "delivered_at", "redelivery", "duration", "status", "status_code", "event", "action",
        "installation_id", "repository_id", "throttled_at",
    }  # fmt: skip
    capped = get(fake_github, path + "?per_page=500", auth=token)
    assert len(capped.json()) == 100
    link = capped.headers["link"]
    assert link.startswith(f"<{fake_github.url}{path}?per_page=100&cursor=v1_")
    assert link.endswith('>; rel="next"')
    rest = httpx.get(link[1 : link.index(">")], headers={"authorization": f"Bearer {token}"})
    assert len(rest.json()) == 50
    assert "link" not in rest.headers
    ids = [d["id"] for d in capped.json() + rest.json()]
    assert ids == sorted(ids, reverse=True)
    for answer in (default, capped, rest):
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset"} <= set(
            answer.headers
        )
        assert answer.headers["x-ratelimit-resource"] == "core"
    assert get(fake_github, path).status_code == 404  # no credential


def test_ten_thousand_old_deliveries_list_quickly(fake_github: FakeGitHub) -> None:
    token = fake_github.add_token()
    hook = fake_github.repo_hook(REPO)
    now = time.time()
    started = time.perf_counter()
    for i in range(10_000):
        fake_github.record_delivery(hook, "push", delivered_at=now - 86400 + i)
    recorded = time.perf_counter() - started
    pages, url = 0, f"{fake_github.api_url}/repos/{REPO}/hooks/{hook.id}/deliveries?per_page=100"
    started = time.perf_counter()
    with httpx.Client(headers={"authorization": f"Bearer {token}"}) as client:
        while url:
            answer = client.get(url)
            pages += 1
            url = answer.headers.get("link", "<>")[1 : answer.headers.get("link", "<>").index(">")]
    listed = time.perf_counter() - started
    assert pages == 100
    assert recorded < 5.0
    assert listed < 15.0


def test_rate_limits_cost_and_refuse_as_on_github(fake_github: FakeGitHub) -> None:
    token = fake_github.add_token()
    fake_github.add_release(REPO, "v1")
    first = get(fake_github, f"/repos/{REPO}/releases", auth=token)
    assert first.headers["etag"].startswith('"')
    assert first.headers["x-ratelimit-remaining"] == "4999"
    unchanged = get(fake_github, f"/repos/{REPO}/releases", auth=token, **{"if-none-match": first.headers["etag"]})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["x-ratelimit-remaining"] == "4999"
    assert get(fake_github, "/rate_limit", auth=token).json()["resources"]["core"]["remaining"] == 4999

    fake_github.set_rate_limit(1, token=token)
    assert get(fake_github, f"/repos/{REPO}", auth=token).headers["x-ratelimit-remaining"] == "0"
    refused = get(fake_github, f"/repos/{REPO}", auth=token)
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("API rate limit exceeded")
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert fake_github.counters.rate_limited == 1
    assert get(fake_github, f"/repos/{REPO}").status_code == 200  # another window: anonymous

    fake_github.fail_next(1, status=429, retry_after=30, path_prefix="/repos/")
    limited = get(fake_github, f"/repos/{REPO}")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "30")
    assert "secondary rate limit" in limited.json()["message"]


def test_jwts_are_verified_with_the_apps_public_key() -> None:
    clock = ManualClock(time.time())
    with FakeGitHub(clock=clock) as fake:
        app = fake.app()
        fake.app_hook(app)
        now = int(clock.now())

        def answer(claims: dict[str, object], key: str = app.private_key_pem, algorithm: str = "RS256") -> int:
            token = jwt.encode(claims, key, algorithm=algorithm)
            return get(fake, "/app/hook/deliveries", auth=token).status_code

        good = {"iat": now - 60, "exp": now + 540, "iss": app.app_id}
        assert answer(good) == 200
        assert answer({**good, "exp": now - 1}) == 401  # expired
        assert answer({**good, "exp": now + 660}) == 401  # more than 10 minutes ahead
        assert answer({**good, "iat": now + 30}) == 401  # issued in the future
        assert answer({**good, "iss": "999"}) == 401  # another app
        assert answer(good, key=fake.app().private_key_pem) == 401  # another key
        assert answer(good, key="a shared secret, not the App's RSA key", algorithm="HS256") == 401
        refused = get(fake, "/app/hook/deliveries", auth=fake.add_token())
        assert (refused.status_code, refused.json()["message"]) == (401, "A JSON web token could not be decoded")


def test_installation_tokens_expire_and_reach_only_their_installation() -> None:
    clock = ManualClock(time.time())
    with FakeGitHub(clock=clock, token_ttl=600) as fake:
        app = fake.app()
        fake.add_repository(REPO, private=True)
        fake.add_repository("other/private", private=True)
        installation = fake.install(app, "octo-org")
        app_jwt = jwt.encode({"iat": int(clock.now()) - 60, "exp": int(clock.now()) + 540, "iss": app.app_id},
                             app.private_key_pem, algorithm="RS256")  # fmt: skip
        found = get(fake, f"/repos/{REPO}/installation", auth=app_jwt).json()
        assert (found["id"], found["account"]["login"]) == (installation.id, "octo-org")
        assert get(fake, "/repos/other/private/installation", auth=app_jwt).status_code == 404
        assert get(fake, f"/repos/{REPO}", auth=app_jwt).status_code == 403  # a JWT is not an installation's token

        issued = httpx.post(
            f"{fake.api_url}/app/installations/{installation.id}/access_tokens",
            headers={"authorization": f"Bearer {app_jwt}"},
        )
        assert issued.status_code == 201
        token = issued.json()["token"]
        assert get(fake, f"/repos/{REPO}", auth=token).json()["private"] is True
        assert get(fake, "/repos/other/private", auth=token).status_code == 404
        clock.advance(601)
        expired = get(fake, f"/repos/{REPO}", auth=token)
        assert (expired.status_code, expired.json()["message"]) == (401, "Bad credentials")


def test_redelivery_answers_and_hookshots_requests() -> None:
    clock = ManualClock(time.time())
    with FakeGitHub(clock=clock) as fake, Destination(secret="s3cret") as receiver:
        token = fake.add_token()
        hook = fake.repo_hook(REPO, receiver.url, secret="s3cret", content_type="form")
        sent = fake.deliver(hook, "release", {"action": "published", "repository": {"id": 7}})
        assert (sent.status_code, sent.repository_id, sent.action) == (200, 7, "published")
        [received] = receiver.accepted
        assert received.headers["content-type"] == "application/x-www-form-urlencoded"
        assert received.headers["x-hub-signature-256"] == signature.sign(received.body, b"s3cret")
        assert parse_qs(received.body.decode())["payload"] == ['{"action":"published","repository":{"id":7}}']

        base = f"{fake.api_url}/repos/{REPO}/hooks/{hook.id}/deliveries"
        detail = get(fake, urlsplit(f"{base}/{sent.id}").path, auth=token).json()
        assert detail["request"]["payload"] == {"action": "published", "repository": {"id": 7}}
        assert detail["request"]["headers"]["X-GitHub-Delivery"] == sent.guid

        accepted = httpx.post(f"{base}/{sent.id}/attempts", headers={"authorization": f"Bearer {token}"})
        assert (accepted.status_code, accepted.json()) == (202, {})
        fake.wait_redeliveries()
        assert [d.redelivery for d in fake.deliveries(hook)] == [True, False]

        clock.advance(3 * 86400 + 1)
        too_old = httpx.post(f"{base}/{sent.id}/attempts", headers={"authorization": f"Bearer {token}"})
        assert too_old.status_code == 422
        assert too_old.json()["message"] == "Validation Failed"
        assert too_old.json()["status"] == "422"
        assert too_old.json()["errors"][0]["message"] == "This delivery is too old to redeliver"
        unknown = httpx.post(f"{base}/1/attempts", headers={"authorization": f"Bearer {token}"})
        assert unknown.status_code == 404
    assert fake.counters.redeliveries_requested == fake.counters.redeliveries_sent == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_faults_match_a_path_prefix_and_a_method(fake_github: FakeGitHub, status: int) -> None:
    fake_github.add_repository(REPO)
    fake_github.fail_next(2, status=status, path_prefix="/repos/", method="GET")
    assert get(fake_github, "/rate_limit").status_code == 200
    assert [get(fake_github, f"/repos/{REPO}").status_code for _ in range(3)] == [status, status, 200]
    assert fake_github.counters.faults == 2
