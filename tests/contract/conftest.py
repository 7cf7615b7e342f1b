"""Every contract test takes `backend`: one run per registry entry (`backends.py`), on a fresh backend whose time
is the test's `clock`; `reopen` opens it again on the same storage. Tests are coroutines (anyio's pytest plugin,
asyncio): the backend is opened, used and closed on one event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ghingest.ports import ManualClock
from tests.contract.backends import EVERYTHING, REGISTRY


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*names): the ports and features (backends.py) a contract test needs")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=[pytest.param(name, marks=entry.marks, id=name) for name, entry in REGISTRY.items()])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock, anyio_backend: str
) -> AsyncIterator[Any]:
    entry = REGISTRY[request.param]
    needs = {name for marker in request.node.iter_markers("needs") for name in marker.args}
    if unknown := needs - EVERYTHING:
        raise ValueError(f"unknown ports or features in @pytest.mark.needs: {sorted(unknown)}")
    if missing := needs - entry.provides:
        pytest.skip(f"{request.param} does not provide {', '.join(sorted(missing))}")
    async with contextlib.asynccontextmanager(entry.open)(tmp_path, clock) as opened:
        yield opened


@pytest.fixture
def reopen(
    request: pytest.FixtureRequest, backend: Any, tmp_path: Path, clock: ManualClock
) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """`reopen()`: the test's backend opened again, on the storage of `backend` (a restart, or a second process):
    an async context manager. Only for a `persistent` backend (`@pytest.mark.needs("persistent")`)."""
    entry = REGISTRY[request.node.callspec.params["backend"]]
    return lambda: contextlib.asynccontextmanager(entry.open)(tmp_path, clock)
