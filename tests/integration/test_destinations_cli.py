"""`ghingest destinations` on an embedded store and a route file, with real HTTP destinations: the table and its
JSON, a test delivery (exit 1 unless 2xx), and the exit codes of an unknown destination (2)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from typer.testing import CliRunner, Result

from ghingest.app.cli import app
from tests.conftest import SECRET, TOKEN
from tests.destinations import Answer, Destination, routes_toml


@pytest.fixture(scope="module")
def destinations() -> Iterator[tuple[Destination, Destination]]:
    with Destination(secret="ci-secret-0123456") as ci, Destination(lambda _r: Answer(503, b"maintenance")) as down:
        yield ci, down


@pytest.fixture
def cli(tmp_path: Path, destinations: tuple[Destination, Destination]) -> Iterator[Callable[..., Result]]:
    ci, down = destinations
    routes = tmp_path / "routes.toml"
    routes.write_text(
        routes_toml(
            {
                "ci": {"url": ci.url, "secret": "ci-secret-0123456"},
                "down": {"url": down.url, "secret": "down-secret"},
                "gone": {"url": "http://127.0.0.1:9/hook/s3cr3t", "secret": "gone-secret", "timeout": 2},
            },
            [{"name": "all", "destinations": ["ci", "down"]}],
        )
    )
    env = {
        "GHINGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'ghingest.db'}",
        "GHINGEST_DATA_DIR": str(tmp_path / "data"),
        "GHINGEST_WEBHOOK_SECRETS": SECRET,
        "GHINGEST_API_TOKENS": TOKEN,
        "GHINGEST_ROUTES_FILE": str(routes),
        "GHINGEST_LOG_LEVEL": "error",
    }
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["destinations", *args], env=env)

    logging = structlog.get_config()  # the command configures logging onto the runner's output, closed after it
    try:
        yield run
    finally:
        structlog.configure(**logging)


def test_list_pause_resume_and_test_with_their_exit_codes(
    cli: Callable[..., Result], destinations: tuple[Destination, Destination]
) -> None:
    run = cli
    ci, down = destinations
    paused = run("pause", "ci")
    assert paused.exit_code == 0, paused.output
    assert "ci paused by " in paused.output
    assert "(cli)" in paused.output
    listed = run("list", "--json")
    assert listed.exit_code == 0, listed.output
    by_name = {d["name"]: d for d in orjson.loads(listed.output)}
    assert sorted(by_name) == ["ci", "down", "gone"]
    assert by_name["ci"]["paused"]["paused_by"].endswith("(cli)")
    assert by_name["down"]["health"] == {"state": "idle", "reason": "no attempt in the last 24 hours"}
    table = run("list")
    assert table.exit_code == 0
    assert "no attempt in the last 24 hours" in table.output
    assert "(cli)" in table.output

    tested = run("test", "ci")  # while paused: a test delivery is no forward
    assert tested.exit_code == 0, tested.output
    assert tested.output.startswith("ci: HTTP 200 in ")
    assert any(r.headers["x-github-event"] == "ping" for r in ci.accepted)
    refused = run("test", "down")
    assert refused.exit_code == 1
    assert refused.output.startswith("down: HTTP 503 in ")
    assert "maintenance" in refused.output
    assert len(down.received) == 1
    unreachable = run("test", "gone")
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("gone: ConnectFailed: cannot connect to 127.0.0.1:9")
    assert "s3cr3t" not in unreachable.output  # a URL's path may hold a token

    resumed = run("resume", "ci")
    assert resumed.exit_code == 0
    assert "ci resumed (paused by " in resumed.output
    assert run("resume", "ci").output.strip() == "ci was not paused"
    for action in ("pause", "resume", "test"):
        unknown = run(action, "nowhere")
        assert unknown.exit_code == 2
        assert "no destination named 'nowhere'" in unknown.output
