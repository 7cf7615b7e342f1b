"""`Offload`: small inputs run inline, large ones in a worker process, and a worker process that dies fails only
the calls it was running."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from ghingest.app.offload import Offload, OffloadFailed


def pid() -> int:
    return os.getpid()


def die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_small_inputs_run_inline_and_large_ones_in_a_worker_process() -> None:
    offload = Offload(inline_bytes=100)

    async def scenario() -> None:
        assert await offload.run(100, pid) == os.getpid()
        assert await offload.run(101, pid) != os.getpid()

    try:
        asyncio.run(scenario())
    finally:
        offload.close()


def test_a_worker_process_that_dies_fails_its_call_and_the_next_call_gets_a_new_one() -> None:
    offload = Offload(inline_bytes=0)

    async def scenario() -> None:
        first = await offload.run(1, pid)
        with pytest.raises(OffloadFailed):
            await offload.run(1, die)
        second = await offload.run(1, pid)
        assert second not in (first, os.getpid())

    try:
        asyncio.run(scenario())
    finally:
        offload.close()
