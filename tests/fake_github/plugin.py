"""The `fake_github` fixture, registered for every test folder by `tests/conftest.py` (`pytest_plugins`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_github.server import FakeGitHub


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """A fake GitHub API on 127.0.0.1, on the wall clock (set `fake_github.clock` to share a `ManualClock`)."""
    with FakeGitHub() as fake:
        yield fake
