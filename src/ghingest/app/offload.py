"""Run CPU-heavy pure functions away from the event loop that answers GitHub.

The receiver, the read API and the worker share one event loop in `ghingest serve`. Parsing a 25 MiB payload of
many small objects takes the better part of a second in orjson, and a C call like that holds the GIL for all of
it: in a thread it would stall the loop just the same. So work on inputs larger than `inline_bytes` goes to a
worker process (started on first use, `spawn`ed: no copy of this process's threads or connections), and only its
small result comes back; smaller inputs run inline, where a thread hop would cost more than the work.

A worker process that dies (killed, out of memory) fails the calls in flight with `OffloadFailed`, and the next
call starts a new one. Each process is replaced after `tasks_per_process` calls, so that the memory a huge payload
made it grow is given back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

INLINE_BYTES = 64 * 1024
TASKS_PER_PROCESS = 64


class OffloadFailed(Exception):
    """The worker process running the call died."""


class Offload:
    def __init__(
        self, *, inline_bytes: int = INLINE_BYTES, processes: int = 1, tasks_per_process: int = TASKS_PER_PROCESS
    ) -> None:
        self.inline_bytes = inline_bytes
        self._processes = processes
        self._tasks_per_process = tasks_per_process
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def inline(self, size: int) -> bool:
        return size <= self.inline_bytes

    async def run(self, size: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`: inline when `size` (the input's bytes) is small, else in a worker process (`fn`
        and its arguments must then be picklable: module-level functions and plain values)."""
        if self.inline(size):
            return fn(*args, **kwargs)
        pool = self._pool_now()
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args, **kwargs))
        except BrokenProcessPool as exc:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise OffloadFailed("the worker process running it died") from exc

    def _pool_now(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=self._tasks_per_process,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
