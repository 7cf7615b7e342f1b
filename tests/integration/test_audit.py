"""The audit log over real HTTP and from the command line: who (a bearer token, a session, the CLI), when, from
where, what selection and what came of it; sign-ins, failed ones (never what was typed as the secret) and sign-outs;
`GET /api/audit` with its filters and JSON 400s; an audit log that cannot write leaves the action's effect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from ghingest.app import audit
from ghingest.app.logs import configure_logging
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings, load_settings
from ghingest.app.users import hash_password
from ghingest.core.errors import StoreUnavailable
from ghingest.ports import AuditEntry, AuditQuery, ReprocessSelection
from tests.conftest import SECRET, TOKEN, ThreadedServer, post_webhook, release, signed, wait_until
from tests.contract.support import incoming
from tests.dashboard_support import login_form_token, session_client

PASSWORD = "correct horse battery staple"
TYPED = "hunter2-typed-by-mistake"


def _settings(folder: Path) -> Settings:
    users = folder / "users"
    hashed = hash_password(PASSWORD)
    users.write_text(f"olga:{hashed}:operator\nvera:{hashed}:viewer\n", encoding="utf-8")
    return load_settings(
        database_url=f"sqlite:///{folder / 'audit.db'}",
        data_dir=folder / "data",
        webhook_secrets=SECRET,
        api_tokens=f"{TOKEN},second-api-token-0123456789",
        users_file=users,
        worker_poll_interval=0.05,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    with ThreadedServer(Runtime.build(_settings(tmp_path_factory.mktemp("audit")))) as running:
        with httpx.Client(base_url=running.url, timeout=10) as plain:
            for n in range(2):
                assert post_webhook(plain, signed(release(release_id=n + 1), delivery_id=f"aud-{n}")).status_code == 202
        yield running


def _api(server: ThreadedServer, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"})


def _entries(server: ThreadedServer, **params: Any) -> list[dict[str, Any]]:
    with _api(server) as api:
        answer = api.get("/api/audit", params=params)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


def test_api_actions_are_recorded_with_the_token_and_the_result(server: ThreadedServer) -> None:
    with _api(server, "second-api-token-0123456789") as api:
        wait_until(lambda: api.get("/api/deliveries/aud-0").json()["status"] == "processed")
        assert api.post("/api/reprocess", json={"delivery_id": "aud-0"}).json() == {"count": 1}
        assert api.post("/api/reprocess", json={}).status_code == 400  # nothing chosen: refused, not recorded
        assert api.post("/api/replays", json={"delivery_id": "aud-0", "dry_run": True}).status_code == 200
        assert api.post("/api/replays", json={"repository": "nobody/*"}).json() == {"count": 0, "dry_run": False}
    reprocessed = _entries(server, action="reprocess", actor="api token 2")
    assert len(reprocessed) == 1
    entry = reprocessed[0]
    assert entry["selection"] == {"delivery_id": "aud-0"}
    assert entry["result"] == {"queued": 1}
    assert entry["outcome"] == "ok"
    assert entry["client"] == "127.0.0.1"
    assert entry["at"].endswith("Z")
    replays = _entries(server, action="replay")
    assert [e["selection"] for e in replays] == [{"repository": "nobody/*"}]  # the dry run changed nothing
    assert replays[0]["result"] == {"queued": 0}


def test_sign_ins_failures_and_sign_outs_are_recorded_without_what_was_typed(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        form = login_form_token(browser.get("/login").text)
        fields = {"login_token": form, "username": TYPED, "password": TYPED}
        assert browser.post("/login", data=fields).status_code == 401  # an unknown name: maybe a password
        fields = {"login_token": form, "username": "olga", "password": "wrong " + TYPED}
        assert browser.post("/login", data=fields).status_code == 401
        fields = {"login_token": form, "username": "olga", "password": PASSWORD}
        assert browser.post("/login", data=fields).status_code == 303
        page = browser.get("/audit")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        assert browser.post("/logout", data={"csrf_token": csrf}).status_code == 303
    failed = _entries(server, action="sign_in_failed")
    assert [(e["actor"], e["selection"], e["outcome"]) for e in failed[:2]] == [
        ("olga", {"method": "password", "known_user": True}, "failed"),
        ("unknown user", {"method": "password", "known_user": False}, "failed"),
    ]
    assert [e["actor"] for e in _entries(server, action="sign_in")][:1] == ["olga"]
    assert [e["actor"] for e in _entries(server, action="sign_out")][:1] == ["olga"]
    everything = orjson.dumps(_entries(server, limit=200)).decode()
    assert TYPED not in everything
    assert PASSWORD not in everything
    assert TOKEN not in everything


def test_the_audit_api_filters_pages_and_refuses_bad_parameters(server: ThreadedServer) -> None:
    with session_client(server) as session:
        assert session.get("/audit").status_code == 200  # a token session is an operator
    signed_in = _entries(server, actor="token 1", action="sign_in")
    assert signed_in
    assert signed_in[0]["selection"] == {"method": "token"}
    with _api(server) as api:
        first = api.get("/api/audit", params={"limit": 1}).json()
        assert len(first["items"]) == 1
        assert first["next_cursor"]
        second = api.get("/api/audit", params={"limit": 1, "cursor": first["next_cursor"]}).json()
        assert second["items"][0]["id"] != first["items"][0]["id"]
        assert api.get("/api/audit", params={"outcome": "failed"}).json()["items"]
        assert all(
            e["outcome"] == "failed" for e in api.get("/api/audit", params={"outcome": "failed"}).json()["items"]
        )
        assert api.get("/api/audit", params={"since": "2999-01-01T00:00:00Z"}).json()["items"] == []
        for params, error in (
            ({"since": "yesterday"}, "invalid_request"),
            ({"outcome": "maybe"}, "invalid_request"),
            ({"limit": 0}, "invalid_request"),
            ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ):
            answer = api.get("/api/audit", params=params)
            assert answer.status_code == 400, params
            assert answer.json()["error"] == error, params
    assert httpx.get(f"{server.url}/api/audit", timeout=10).status_code == 401


def test_the_command_line_records_reprocess_and_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ghingest.app.cli import app

    settings = _settings(tmp_path)
    runtime = Runtime.build(settings, generate_credentials=False)
    with ThreadedServer(runtime) as running, httpx.Client(base_url=running.url, timeout=10) as plain:
        bad = orjson.dumps({"action": "published", "release": {"tag_name": "no id"}})
        assert post_webhook(plain, signed(bad, delivery_id="cli-bad")).status_code == 202
        with _api(running) as api:
            wait_until(lambda: api.get("/api/deliveries/cli-bad").json()["status"] == "failed")
    for name, value in {
        "GHINGEST_DATABASE_URL": settings.database_url,
        "GHINGEST_DATA_DIR": str(tmp_path / "data"),
        "GHINGEST_WEBHOOK_SECRETS": SECRET,
        "GHINGEST_API_TOKENS": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    try:
        reprocessed = runner.invoke(app, ["reprocess", "--delivery", "cli-bad"])
        replayed = runner.invoke(app, ["replay", "--delivery", "cli-bad"])
    finally:
        configure_logging()  # the commands pointed the logs at the runner's output, closed now
    assert reprocessed.exit_code == 1, reprocessed.output  # it failed again
    assert replayed.exit_code == 3  # no forward matched (a failed delivery has none)

    async def entries() -> list[AuditEntry]:
        backend = Runtime.build(settings, generate_credentials=False).backend
        await backend.resources.start()
        try:
            return list((await backend.audit.list(AuditQuery())).items)
        finally:
            await backend.resources.close()

    replay, reprocess = asyncio.run(entries())
    assert reprocess.action == "reprocess"
    assert replay.action == "replay"
    assert reprocess.actor.startswith("cli:")
    assert "@" in reprocess.actor
    assert reprocess.client is None
    assert reprocess.selection == {"delivery_id": "cli-bad"}
    assert (reprocess.result["queued"], reprocess.result["processed"], reprocess.result["failed_again"]) == (1, 0, 1)
    assert reprocess.result["status"] == "failed"
    assert "PayloadMismatch" in reprocess.result["delivery_error"]
    assert replay.result == {"queued": 0}


class _BrokenAudit:
    async def append(self, entry: AuditEntry) -> None:
        raise StoreUnavailable("the audit table is locked")


def test_an_audit_log_that_cannot_write_keeps_the_action_and_says_so(tmp_path: Path) -> None:
    settings = load_settings(database_url="memory://", data_dir=tmp_path, webhook_secrets=SECRET, api_tokens=TOKEN)
    runtime = Runtime.build(settings, generate_credentials=False)

    async def scenario() -> tuple[audit.Recorded, int]:
        backend = runtime.backend
        await backend.resources.start()
        assert await backend.inbox.append(incoming("kept"), received_at=runtime.clock.now())
        await runtime.worker().drain()
        backend.audit = _BrokenAudit()  # type: ignore[assignment]
        done = await audit.reprocess(runtime, audit.cli_actor(), ReprocessSelection(delivery_id="kept"))
        return done, await backend.inbox.depth()

    done, depth = asyncio.run(scenario())
    assert done.entry is None
    assert done.result == {"queued": 1}
    assert depth == 1  # the delivery is queued again all the same
    assert 'ghingest_audit_write_failures_total{action="reprocess"} 1.0' in runtime.metrics.render().decode()


def test_an_action_that_raises_is_recorded_as_failed_and_the_error_goes_on(tmp_path: Path) -> None:
    settings = load_settings(database_url="memory://", data_dir=tmp_path, webhook_secrets=SECRET, api_tokens=TOKEN)
    runtime = Runtime.build(settings, generate_credentials=False)

    async def broken() -> dict[str, Any]:
        raise StoreUnavailable("the inbox does not answer")

    async def scenario() -> list[AuditEntry]:
        await runtime.backend.resources.start()
        with pytest.raises(StoreUnavailable):
            await audit.perform(runtime, audit.Actor("olga", "192.0.2.1"), "replay", {"to": "ci"}, broken)
        return list((await runtime.backend.audit.list(AuditQuery())).items)

    [entry] = asyncio.run(scenario())
    assert (entry.actor, entry.client, entry.action, entry.ok) == ("olga", "192.0.2.1", "replay", False)
    assert entry.selection == {"to": "ci"}
    assert entry.result == {"error": "StoreUnavailable: the inbox does not answer"}


def test_viewers_neither_see_nor_read_the_audit_log(server: ThreadedServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        form = login_form_token(browser.get("/login").text)
        fields = {"login_token": form, "username": "vera", "password": PASSWORD}
        assert browser.post("/login", data=fields).status_code == 303
        home = browser.get("/")
        assert 'href="/audit"' not in home.text
        page = browser.get("/audit", headers={"Accept": "text/html"})
        assert page.status_code == 403
        assert "Operator role required" in page.text
        assert browser.get("/api/audit").status_code == 403
