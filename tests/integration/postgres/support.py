"""What the PostgreSQL integration tests share."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import psycopg


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, step: float = 0.02) -> Any:
    """Poll `check` (a function, or a coroutine function) until it returns something truthy; fail after `timeout`
    seconds (a poll with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(step)


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def waiting_on_advisory_lock(url: str) -> bool:
    """Whether some session of the database waits for an advisory lock."""
    async with await connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        row = await cursor.fetchone()
        return bool(row and row[0])
