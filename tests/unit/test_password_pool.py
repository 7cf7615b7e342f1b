"""The password pool: at most `threads` running and `queue` waiting; past that, refused at once (never queued)."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from ghingest.app.password_pool import NICE, PasswordPool, PoolBusy


def test_calls_past_the_bound_are_refused_at_once() -> None:
    pool = PasswordPool(threads=1, queue=1)
    release = threading.Event()

    def blocked(n: int) -> int:
        assert release.wait(timeout=30)
        return n

    async def scenario() -> list[int]:
        running = asyncio.ensure_future(pool.run(blocked, 1))
        waiting = asyncio.ensure_future(pool.run(blocked, 2))
        await asyncio.sleep(0)  # let both be admitted
        assert pool.admitted == 2
        with pytest.raises(PoolBusy):
            await pool.run(blocked, 3)  # raises without waiting for anything
        release.set()
        done = [await running, await waiting]
        assert pool.admitted == 0
        done.append(await pool.run(blocked, 4))  # room again
        return done

    try:
        assert asyncio.run(scenario()) == [1, 2, 4]
    finally:
        release.set()
        pool.close()


def test_pool_threads_run_at_a_lower_priority() -> None:
    pool = PasswordPool(threads=1, queue=0)

    def nice_of_this_thread() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    try:
        here = nice_of_this_thread()
        assert asyncio.run(pool.run(nice_of_this_thread)) == max(here, NICE)
    finally:
        pool.close()


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="thread"):
        PasswordPool(threads=0)
