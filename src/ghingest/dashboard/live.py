"""`GET /live`: Server-Sent Events from the change feed, so that open pages follow new releases, events and forwards.

Each message is one change: `id` is its sequence number, `event` its kind (`release`, `event` or `forward`), `data`
a small JSON document with the reference. A client resumes from `Last-Event-ID` (EventSource sends it by itself when it
reconnects) or `?after=` (the sequence number a page was rendered at), so nothing is missed across a reconnect or a
server restart. Far behind (more than `CATCH_UP_LIMIT` changes), the client gets one `reset` and reloads its view.

A stream lasts at most `STREAM_SECONDS`, then ends and the client reconnects at once (`retry`), and a connection
through a proxy never idles (a comment every `KEEPALIVE_SECONDS`). When the server begins to shut down
(`Runtime.closing`), every stream sends `bye` and ends at once: the server does not wait for them, and the page
says it is offline without waiting for a reconnection to fail.

Where responses cannot stream (`GHINGEST_LIVE_UPDATES=poll`: API Gateway buffers a Lambda's whole response), each
request answers what changed since the client's cursor and ends at once, with `retry` set to the poll interval:
EventSource's own reconnection is then the poll, and the page says it polls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from ghingest.app.auth import Principal
from ghingest.app.runtime import runtime_of
from ghingest.core.pagination import InvalidCursor
from ghingest.dashboard.security import signed_in_or_401
from ghingest.ports import ChangeFeed

router = APIRouter(include_in_schema=False)
STREAM_SECONDS = 25.0
KEEPALIVE_SECONDS = 10.0
POLL_SECONDS = 1.0  # a change committed by another process (no in-process wake-up) shows within this
CATCH_UP_LIMIT = 500
RETRY_MS = 1000
MAX_CURSOR_CHARS = 200


def _message(cursor: str, kind: str, data: dict[str, object]) -> bytes:
    return f"id: {cursor}\nevent: {kind}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def stream(
    feed: ChangeFeed,
    after: str | None,
    *,
    closing: asyncio.Event,
    seconds: float = STREAM_SECONDS,
    retry_ms: int = RETRY_MS,
) -> AsyncIterator[bytes]:
    """The changes after `after` for `seconds` (0: what there is now, once: a poll), or until `closing` is set."""
    yield f"retry: {retry_ms}\n\n".encode()
    if after is None or not await _resumable(feed, after):
        after = await feed.latest()
    yield _message(after, "hello", {"cursor": after})
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    first = True
    while first or time.monotonic() < deadline:
        first = False
        changes = await feed.changes_since(after, limit=CATCH_UP_LIMIT)
        if len(changes) >= CATCH_UP_LIMIT:
            after = await feed.latest()
            yield _message(after, "reset", {"cursor": after})
            quiet_since = time.monotonic()
            continue
        for change in changes:
            yield _message(change.cursor, change.kind, {"ref": change.ref})
            after = change.cursor
        if changes:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            quiet_since = time.monotonic()
        if time.monotonic() < deadline:
            timeout = min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))
            if await _closed_while_waiting(feed, after, timeout, closing):
                yield b"event: bye\ndata: {}\n\n"
                return


async def _closed_while_waiting(feed: ChangeFeed, after: str, timeout: float, closing: asyncio.Event) -> bool:
    """Wait for a change after `after` (at most `timeout` seconds), unless `closing` is set first: whether it was."""
    if closing.is_set():
        return True
    waiting = asyncio.ensure_future(feed.wait_for_change(after, timeout=timeout))
    closed = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((waiting, closed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        closed.cancel()
    return closing.is_set()


async def _resumable(feed: ChangeFeed, cursor: str) -> bool:
    """Whether the feed can resume from `cursor` (one it made, not from the future of another store)."""
    try:
        await feed.changes_since(cursor, limit=1)
    except InvalidCursor:
        return False
    return True


def _resume_point(last_event_id: str | None, after: str | None) -> str | None:
    """`Last-Event-ID`, else `?after=`, when it could be a cursor (short, printable); None: follow from now. The
    feed itself judges whether it made the cursor."""
    for value in (last_event_id, after):
        if value and len(value) <= MAX_CURSOR_CHARS and value.isascii() and value.isprintable():
            return value
    return None


async def live_context(request: Request, *, follows: bool = True) -> dict[str, str]:
    """What a page's template needs to follow the feed (`base.html`: the cursor it was rendered at, and with it the
    Live indicator); nothing for a page that does not follow it (an older page of a list stays as it is), which
    then shows no indicator."""
    if not follows:
        return {}
    # A page after an action starts from before what its message read (`flash.flash_of`), so that a change made
    # meanwhile (the reprocessing it reports) refreshes it.
    seq: str | None = getattr(request.state, "live_seq", None)
    return {"live_seq": seq if seq is not None else await runtime_of(request).backend.feed.latest()}


@router.get("/live")
async def live(
    request: Request,
    _principal: Annotated[Principal, Depends(signed_in_or_401)],
    after: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    runtime = runtime_of(request)
    settings = runtime.settings
    resume, closing = _resume_point(last_event_id, after), runtime.closing
    if settings.live_updates == "poll":
        changes = stream(
            runtime.backend.feed, resume, closing=closing, seconds=0, retry_ms=round(settings.live_poll_interval * 1000)
        )
    else:
        changes = stream(runtime.backend.feed, resume, closing=closing)
    return StreamingResponse(
        changes,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
