"""Password verification (argon2, ~0.2 s of CPU and 64 MiB each on purpose) on a small pool of its own.

It must not run on the event loop, nor on asyncio's default executor: the SQLite reader runs every read query
there (`SqliteReader.run`), so a dozen parallel guesses used to queue every read behind them (read p50 3 ms →
700 ms and worse). Here at most `threads` verifications run at once and at most `queue` wait; any more is refused
at once (`PoolBusy`), never queued. The pool's threads run at a lower CPU priority (nice 10; argon2 starts its
lanes from them, and they inherit it), so that on a busy machine verifications get the CPU the event loop and the
reader leave over: guessing costs a bounded share of the machine, and nothing else waits on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


NICE = 10  # the pool's threads, and the lanes argon2 starts from them, leave the CPU to everything else first


def _lower_priority() -> None:
    """Linux keeps a nice value per thread (`setpriority(PRIO_PROCESS, tid)`), inherited by the threads it starts."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


class PoolBusy(Exception):
    """Every thread is busy and the queue is full: try again shortly."""


class PasswordPool:
    def __init__(self, *, threads: int = 1, queue: int = 4) -> None:
        if threads < 1 or queue < 0:
            raise ValueError("a password pool needs at least one thread and a queue of zero or more")
        self.threads = threads
        self.capacity = threads + queue
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="password", initializer=_lower_priority
        )
        self._admitted = 0  # running or waiting; changed on the event loop thread only

    @property
    def admitted(self) -> int:
        return self._admitted

    async def run(self, work: Callable[..., T], *args: object) -> T:
        """Run `work(*args)` on the pool; raise `PoolBusy` at once when `capacity` calls are already admitted."""
        if self._admitted >= self.capacity:
            raise PoolBusy
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
