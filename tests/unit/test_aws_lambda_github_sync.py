"""The GitHub sync function's leases and time limit, on the memory backend and with no GitHub at all (its URL is a
port nothing listens on, so any request would fail and be recorded): an invocation that finds the leases held by
another does nothing; one with less than the reserve left starts nothing; both give their leases up at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest

from ghingest.app.aws_lambda import container as lambda_container
from ghingest.app.aws_lambda import github_sync
from ghingest.app.aws_lambda.github_sync import RESERVE_SECONDS
from ghingest.core.tracking import first_poll_at, repository_key
from ghingest.ports.github_sync import GitHubSyncState
from tests.conftest import free_port
from tests.e2e.aws_events import LambdaContext

HOOK = "repo:octo-org/hello-world:12345"
TRACKED = "octo-org/tracked"
IDLE = {"hooks": 0, "hook_errors": 0, "gaps_found": 0, "redeliveries_requested": 0, "polls": 0, "releases": 0}


@pytest.fixture
def function(monkeypatch: pytest.MonkeyPatch) -> Iterator[lambda_container.Container]:
    """The function's container on a memory store, one hook to reconcile and one repository to track."""
    secret = orjson.dumps({"webhook_secrets": ["a-webhook-secret"], "github_token": "ghp_test"}).decode()
    monkeypatch.setenv("GHINGEST_DATABASE_URL", "memory://")
    monkeypatch.setenv("GHINGEST_AWS_SECRETS_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:ghingest")
    monkeypatch.setenv("GHINGEST_GITHUB_API_URL", f"http://127.0.0.1:{free_port()}")  # no request may be made
    monkeypatch.setenv("GHINGEST_RECONCILE_HOOKS", HOOK)
    monkeypatch.setenv("GHINGEST_TRACK_REPOSITORIES", TRACKED)
    monkeypatch.setattr(lambda_container, "_secrets_manager_value", lambda _settings: secret)
    # The repository's first poll is well into the interval (a stable hash of its name): nothing is due at first.
    assert first_poll_at(repository_key(TRACKED), now=0, interval=600) > 60
    lambda_container.reset()
    yield lambda_container.current()
    lambda_container.reset()


def state_of(box: lambda_container.Container) -> GitHubSyncState:
    return box.runtime().backend.github


def test_an_invocation_that_finds_the_leases_held_does_nothing_and_takes_over_once_they_are_given_up(
    function: lambda_container.Container,
) -> None:
    box, state = function, state_of(function)
    until = time.time() + 300
    # A first invocation, still running (a manual one, or one a retry started), or a server on the same table:
    assert box.run(state.hold_lease("reconcile", "first-invocation", until=until))
    assert box.run(state.hold_lease("track", "first-invocation", until=until))

    second = github_sync.handler({}, LambdaContext())
    assert (second["reconcile"], second["track"]) == ("not_held", "not_held")
    assert {name: second[name] for name in IDLE} == IDLE
    assert box.run(state.list_tracked()) == []  # not even the configured list was synced
    assert box.run(state.list_scans()) == []  # no hook was reconciled (a run would record its scan)
    assert not box.run(state.hold_lease("track", "someone-else", until=until))  # still the first one's

    box.run(state.release_lease("track", "first-invocation"))  # the first is done with tracking only
    third = github_sync.handler({}, LambdaContext())
    assert (third["reconcile"], third["track"]) == ("not_held", "done")
    assert [t.key for t in box.run(state.list_tracked())] == [TRACKED]  # synced; not due yet, so not polled
    assert third["polls"] == 0
    assert box.run(state.list_scans()) == []
    # Given up at the end of the invocation: another holder may take it at once.
    assert box.run(state.hold_lease("track", "someone-else", until=until))


def test_with_less_than_the_reserve_left_nothing_is_started_and_the_leases_are_given_up(
    function: lambda_container.Container,
) -> None:
    box, state = function, state_of(function)
    report = github_sync.handler({}, LambdaContext(remaining_ms=int((RESERVE_SECONDS - 5) * 1000)))
    assert (report["reconcile"], report["track"], report["out_of_time"]) == ("done", "done", True)
    assert {name: report[name] for name in IDLE} == IDLE
    assert box.run(state.list_scans()) == []  # the hook was not started: the next invocation reconciles it
    until = time.time() + 60
    assert box.run(state.hold_lease("reconcile", "next", until=until))
    assert box.run(state.hold_lease("track", "next", until=until))
