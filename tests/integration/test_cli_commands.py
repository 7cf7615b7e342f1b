"""The command line against a real SQLite store (in-process, `CliRunner`): the exit-code convention, errors that
name the flag, `reprocess`'s counts with no log line under its progress bar, `replay --dry-run`'s breakdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from ghingest.app.cli import app
from ghingest.app.runtime import Runtime
from ghingest.app.settings import load_settings
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.time import iso
from tests.conftest import SECRET, release
from tests.destinations import routes_toml

GOOD = ("cli-1", "cli-2", "cli-3")
BAD = "cli-bad"  # a release payload without a release: processing it fails, and fails again


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with three processed releases forwarded to `ci` (one to `audit` too) and one that failed."""
    root = tmp_path_factory.mktemp("cli")
    routes = root / "routes.toml"
    routes.write_text(
        routes_toml(
            {"ci": {"url": "http://127.0.0.1:9/ci", "secret": "ci-secret-0123"},
             "audit": {"url": "http://127.0.0.1:9/audit", "secret": "audit-secret-0123"}},
            [{"name": "all", "events": ["release"], "destinations": ["ci"]},
             {"name": "one", "events": ["release"], "repositories": ["acme/one"], "destinations": ["audit"]}],
        )
    )  # fmt: skip
    values = {
        "GHINGEST_DATABASE_URL": f"sqlite:///{root / 'g.db'}",
        "GHINGEST_DATA_DIR": str(root / "data"),
        "GHINGEST_WEBHOOK_SECRETS": SECRET,
        "GHINGEST_ROUTES_FILE": str(routes),
        "GHINGEST_WORKER_MAX_ATTEMPTS": "1",
    }
    settings = load_settings(
        database_url=values["GHINGEST_DATABASE_URL"], data_dir=root / "data", webhook_secrets=SECRET,
        routes_file=routes, worker_max_attempts=1,
    )  # fmt: skip
    runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
    runtime.backend.resources.upgrade()

    async def record() -> None:
        await runtime.start()
        try:
            bodies = [(d, release(release_id=n + 1, repository_name="acme/one" if n == 0 else "acme/two"))
                      for n, d in enumerate(GOOD)] + [(BAD, {"action": "published"})]  # fmt: skip
            for n, (delivery_id, payload) in enumerate(bodies):
                delivery = IncomingDelivery(
                    delivery_id, "release", None, ContentKind.JSON, {}, orjson.dumps(payload), 0
                )
                await runtime.backend.inbox.append(delivery, received_at=1_700_000_000.0 + n)
            await runtime.worker().drain()
        finally:
            await runtime.stop()

    asyncio.run(record())
    return values


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={**env, "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_replay_dry_run_shows_the_count_per_destination_and_the_first_deliveries(env: dict[str, str]) -> None:
    code, out, _ = invoke(env, "replay", "--event", "release", "--dry-run")
    assert code == 0
    assert out.splitlines()[0] == "4 forwards would be replayed"
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in out.splitlines() if line[:1] == "│"]
    assert rows[:2] == [["audit", "1"], ["ci", "3"]]  # by destination
    assert [row[:3] for row in rows[2:]] == [["cli-1", "release", "acme/one"], ["cli-2", "release", "acme/two"],
                                             ["cli-3", "release", "acme/two"]]  # fmt: skip
    code, out, _ = invoke(env, "replay", "--event", "release", "--dry-run", "--json")
    assert code == 0
    document = orjson.loads(out)
    assert document["count"] == 4
    assert document["by_destination"] == {"audit": 1, "ci": 3}
    assert document["first"][0] == {"delivery_id": "cli-1", "event": "release", "repository": "acme/one",
                                    "received_at": iso(1_700_000_000.0)}  # fmt: skip
    assert [d["delivery_id"] for d in document["first"]] == list(GOOD)


@pytest.mark.parametrize("dry_run", [False, True])
def test_nothing_matched_exits_3_with_and_without_dry_run(env: dict[str, str], dry_run: bool) -> None:
    flags = ["--dry-run"] if dry_run else []
    code, _, err = invoke(env, "replay", "--repo", "nobody/*", *flags)
    assert code == 3
    assert "no forward matched" in err


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("flag", ["--to", "--destination"])
def test_an_unknown_destination_is_a_usage_error_naming_the_flag(env: dict[str, str], flag: str, dry_run: bool) -> None:
    code, _, err = invoke(env, "replay", "--event", "release", flag, "nowhere", *(["--dry-run"] if dry_run else []))
    assert code == 2
    assert f"Invalid value for {flag}" in err
    assert "'nowhere'" in err


def test_errors_name_the_flag_as_typed(env: dict[str, str]) -> None:
    for args, flag in ((["replay", "--until", "yesterday"], "--until"), (["reprocess", "--since", "x"], "--since"),
                       (["send", "--published-at", "soon", "--print"], "--published-at")):  # fmt: skip
        code, _, err = invoke(env, *args)
        assert code == 2, args
        assert f"Invalid value for {flag}:" in err
    code, _, err = invoke(env, "replay")
    assert code == 2
    assert "choose what to replay: --delivery, --event" in err


def test_reprocess_counts_processed_and_failed_again_with_no_log_line_under_its_bar(env: dict[str, str]) -> None:
    code, out, err = invoke(env, "reprocess", "--since", "2000-01-01T00:00:00Z")
    assert code == 1  # one failed again
    assert "reprocessed 4 deliveries: 3 processed, 1 failed again" in err
    assert "delivery.processed" not in out + err
    assert "delivery.failed" not in out + err
    code, _, err = invoke(env, "reprocess", "--delivery", "cli-2")
    assert code == 0
    assert "reprocessed 1 deliveries: 1 processed, 0 failed again" in err
    code, _, err = invoke(env, "reprocess", "--delivery", "no-such-delivery")
    assert code == 3
    assert "no delivery matched" in err


def test_a_bad_configuration_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    code, _, err = invoke({**env, "GHINGEST_ROUTES_FILE": str(tmp_path / "missing.toml")}, "replay", "--dead-only")
    assert code == 2
    assert "error:" in err
    code, _, err = invoke({**env, "GHINGEST_PORT": "nope"}, "reprocess", "--failed")
    assert code == 2
    assert "GHINGEST_PORT" in err
