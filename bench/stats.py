"""Figures shared by the bench scripts (run as `python bench/<script>.py`, so this folder is on `sys.path`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile `p` (0-100) of `values`; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def paced(
    count: int,
    rate: float,
    send: Callable[[int, float], Awaitable[None]],
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Open loop: start `send(i, due)` for i in range(count), request i due at start + i / rate on `clock`, whether
    or not earlier ones were answered (a stalled server is charged for every request it delays); wait for all.
    Returns the start."""
    start = clock() + 0.2
    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i, due)))
    await asyncio.gather(*tasks)
    return start
