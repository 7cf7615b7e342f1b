"""Server-side failures: connections killed mid-use give `StoreUnavailable` (never the password), then the
backend recovers by itself; a closed backend stays closed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from ghingest.adapters.postgres import open_postgres_backend
from ghingest.core.errors import StoreUnavailable
from ghingest.ports import ManualClock
from tests.contract.support import incoming, let_waiters_start
from tests.integration.postgres.support import connect, eventually

pytestmark = pytest.mark.anyio

PASSWORD = "not-used-by-trust-auth-9f2c"

KILL = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def _kill_connections(url: str) -> int:
    async with await connect(url) as conn:
        return len(await (await conn.execute(KILL)).fetchall())


async def test_killed_connections_give_store_unavailable_then_the_backend_recovers(
    postgres_url: str, clock: ManualClock
) -> None:
    url = _with_password(postgres_url)
    backend = open_postgres_backend(url, pool_size=2, clock=clock, poll_interval=0.05)
    await backend.resources.start()
    try:
        assert await backend.inbox.append(incoming("before"), received_at=clock.now())
        await backend.ready()
        await eventually(lambda: backend.resources.listening)
        assert await _kill_connections(postgres_url) >= 2  # the pool's and the LISTEN connection

        with pytest.raises(StoreUnavailable) as failure:
            await backend.reads.ping()
        assert PASSWORD not in str(failure.value)
        assert failure.value.__cause__ is None
        assert failure.value.__context__ is None or PASSWORD not in str(failure.value.__context__)

        errors: list[str] = []

        async def answers() -> bool:
            try:
                await backend.ready()
            except StoreUnavailable as exc:
                errors.append(str(exc))
                return False
            return True

        await eventually(answers)
        assert not any(PASSWORD in error for error in errors)
        assert await backend.inbox.append(incoming("after"), received_at=clock.now())
        assert [c.delivery.delivery_id for c in await backend.inbox.claim(limit=10, lease_seconds=60)] == [
            "before",
            "after",
        ]
        await eventually(lambda: backend.resources.listening)  # the LISTEN connection came back too
    finally:
        await backend.resources.close()


async def test_an_unreachable_server_gives_store_unavailable(clock: ManualClock) -> None:
    url = f"postgresql://nobody:{PASSWORD}@127.0.0.1:9/none"
    backend = open_postgres_backend(url, pool_size=1, clock=clock, pool_timeout=0.5)
    await backend.resources.start()
    try:
        with pytest.raises(StoreUnavailable) as failure:
            await backend.inbox.append(incoming("x"), received_at=clock.now())
        assert PASSWORD not in str(failure.value)
    finally:
        await backend.resources.close()


async def test_a_closed_backend_stays_closed_and_wakes_its_waiters(
    backends: Callable[..., Any], clock: ManualClock
) -> None:
    backend = await backends()
    task = asyncio.ensure_future(backend.inbox.wait_for_work(600.0))
    await let_waiters_start()
    await backend.resources.close()
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(task, 10)
    await backend.resources.close()  # twice: harmless
    with pytest.raises(StoreUnavailable):
        await backend.resources.start()
    for call in (backend.reads.ping(), backend.store.ping(), backend.feed.latest(), backend.forward_log.stats(),
                 backend.sessions.is_revoked("s"), backend.forwards.claim("ci", limit=1, lease_seconds=1)):  # fmt: skip
        with pytest.raises(StoreUnavailable):
            await call
