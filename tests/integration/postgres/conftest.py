"""PostgreSQL integration tests: a fresh database per test (tests/postgres_support.py), skipped without a server
(failed under CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ghingest.adapters.postgres import open_postgres_backend
from ghingest.ports import Backend, ManualClock
from tests.postgres_support import postgres_url

__all__ = ["postgres_url"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def backends(postgres_url: str, clock: ManualClock, anyio_backend: str) -> AsyncIterator[Callable[..., Any]]:
    """Open started backends on the test's database, each with its own pool and LISTEN connection (as separate
    processes have); all are closed afterwards."""
    opened: list[Backend] = []

    async def open_one(**options: Any) -> Backend:
        backend = open_postgres_backend(postgres_url, clock=clock, pool_size=options.pop("pool_size", 4), **options)
        await backend.resources.start()
        opened.append(backend)
        return backend

    yield open_one
    for backend in opened:
        await backend.resources.close()
