"""`dashboard.live.stream`: a live stream ends with `bye` as soon as the server begins to shut down, whether it is
waiting for a change or just starting."""

from __future__ import annotations

import asyncio

from ghingest.adapters.memory import open_memory_backend
from ghingest.dashboard.live import stream


async def _follow(closing: asyncio.Event, chunks: list[bytes], started: asyncio.Event) -> None:
    backend = open_memory_backend("memory://")
    await backend.resources.start()
    try:
        async for chunk in stream(backend.feed, None, closing=closing, seconds=60):
            chunks.append(chunk)
            if chunk.startswith(b"id: "):  # hello: following
                started.set()
    finally:
        await backend.resources.close()


def test_a_waiting_stream_says_bye_and_ends_when_closing_is_set() -> None:
    async def scenario() -> list[bytes]:
        closing, started, chunks = asyncio.Event(), asyncio.Event(), []
        task = asyncio.ensure_future(_follow(closing, chunks, started))
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(0.05)  # waiting for a change now (60 s of them)
        closing.set()
        await asyncio.wait_for(task, 1)
        return chunks

    chunks = asyncio.run(scenario())
    assert b"event: hello" in chunks[1]
    assert chunks[-1] == b"event: bye\ndata: {}\n\n"


def test_a_stream_opened_while_closing_ends_after_its_hello() -> None:
    async def scenario() -> list[bytes]:
        closing, started, chunks = asyncio.Event(), asyncio.Event(), []
        closing.set()
        await asyncio.wait_for(_follow(closing, chunks, started), 1)
        return chunks

    chunks = asyncio.run(scenario())
    assert b"event: hello" in chunks[-2]
    assert chunks[-1] == b"event: bye\ndata: {}\n\n"
