"""`ghingest serve`, `ghingest reconcile` and `ghingest track` as processes against the fake GitHub: deliveries
GitHub failed to send while ghingest was down come back; a repository's releases are polled into the store."""

from __future__ import annotations

import orjson

from tests.conftest import SECRET, TOKEN, free_port, release, wait_until
from tests.e2e.conftest import ServeProcess
from tests.fake_github import FakeGitHub

REPO = "Octo-Org/Hello-World"


def _api(serve: ServeProcess, path: str) -> object:
    import httpx

    return httpx.get(f"{serve.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)


def test_deliveries_lost_while_down_are_reconciled_and_releases_are_polled(tmp_path, fake_github: FakeGitHub) -> None:
    fake = fake_github
    down = f"http://127.0.0.1:{free_port()}/webhooks/github"
    hook = fake.repo_hook(REPO, url=down, secret=SECRET)
    lost = [fake.deliver(hook, "release", release(release_id=n, tag=f"v{n}")) for n in (1, 2)]
    assert {d.status_code for d in lost} == {0}
    serve = ServeProcess(
        tmp_path,
        GHINGEST_GITHUB_API_URL=fake.api_url,
        GHINGEST_GITHUB_TOKEN=fake.add_token(),
        GHINGEST_RECONCILE_HOOKS=hook.ref.key,
        GHINGEST_RECONCILE_INTERVAL="0",
        GHINGEST_RECONCILE_MIN_AGE="0",
        GHINGEST_GITHUB_MUTATION_INTERVAL="0",
    )
    try:
        serve.start()
        hook.url = f"{serve.url}/webhooks/github"

        bad = serve.cli("reconcile", "--hook", "repo:nope")
        assert bad.returncode == 2
        assert "--hook" in bad.stderr

        done = serve.cli("reconcile", "--json")
        assert done.returncode == 0, done.stderr
        (report,) = orjson.loads(done.stdout)
        assert (report["gaps_found"], report["redeliveries_requested"], report["error"]) == (2, 2, None)
        fake.wait_redeliveries()
        for d in lost:
            wait_until(lambda d=d: _api(serve, f"/api/deliveries/{d.guid}").status_code == 200)
        again = serve.cli("reconcile", "--json")
        assert orjson.loads(again.stdout)[0]["arrived"] == 2
        table = serve.cli("reconcile")
        assert "still missing" in table.stdout

        polled = fake.add_release(REPO, "v9.0.0", body="polled notes")
        tracked = serve.cli("track", "octo-org/hello-world", "--json")
        assert tracked.returncode == 0, tracked.stderr
        (repo,) = orjson.loads(tracked.stdout)
        assert (repo["repository"], repo["last_status"], repo["releases_known"]) == (REPO, 200, 1)
        releases = wait_until(lambda: [r for r in _api(serve, "/api/releases").json()["items"] if r["tag"] == "v9.0.0"])
        assert releases[0]["repository"] == REPO
        assert releases[0]["sources"] == ["poll"]
        # the same release then arrives by webhook, as GitHub would have sent it: still one history entry
        repository = fake.repository(REPO)
        assert repository is not None
        payload = {"action": "published", "release": polled, "sender": polled["author"],
                   "repository": {"id": repository.id, "full_name": REPO, "name": "Hello-World"}}  # fmt: skip
        assert fake.deliver(hook, "release", payload).status_code == 202
        one = wait_until(lambda: (r := _api(serve, f"/api/releases/{polled['id']}").json())["sources"] == ["webhook"]
                         and r)  # fmt: skip
        assert [(h["action"], h["source"]) for h in one["history"]] == [("published", "webhook")]
        listing = serve.cli("track")
        assert REPO in listing.stdout
        missing = serve.cli("track", "octo-org/no-such-repo")
        assert missing.returncode == 1
        assert "404" in missing.stdout
        assert serve.cli("track", "not a repo").returncode == 2
        removed = serve.cli("track", "--remove", "octo-org/no-such-repo", "--json")
        assert [r["repository"] for r in orjson.loads(removed.stdout)] == [REPO]
        assert SECRET not in serve.output()
    finally:
        serve.stop()
