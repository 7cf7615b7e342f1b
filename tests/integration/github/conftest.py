"""The GitHub client against the fake GitHub (tests/fake_github), on one `ManualClock` shared by both: every wait
the client makes goes through `sleeper`, which records it and moves the clock instead of sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ghingest.adapters.github import GitHubClient, RequestRecord
from ghingest.ports.clock import ManualClock
from tests.fake_github import FakeGitHub, Sleeper


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sleeper(clock: ManualClock) -> Sleeper:
    return Sleeper(clock)


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeGitHub]:
    with FakeGitHub(clock=clock) as running:
        yield running


@pytest.fixture
def records() -> list[RequestRecord]:
    return []


@pytest.fixture
async def make_client(
    fake: FakeGitHub, clock: ManualClock, sleeper: Sleeper, records: list[RequestRecord], anyio_backend: str
) -> AsyncIterator[Callable[..., GitHubClient]]:
    """Clients of the fake, on the test's clock and sleeper (closed afterwards)."""
    made: list[GitHubClient] = []

    def make(**options: Any) -> GitHubClient:
        options.setdefault("api_url", fake.api_url)
        options.setdefault("timeout", 5.0)
        client = GitHubClient(clock=clock, sleep=sleeper, on_request=records.append, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()
