"""Release notes for pages: rendered on a small thread pool, never on the event loop, and kept in an LRU cache.

Rendering Markdown is pure Python and can take up to its budget (`markdown.RENDER_BUDGET_SECONDS` of CPU) on
hostile notes. On the event loop that would stall every request of the process; on its own thread it only
shares the GIL (switching every 5 ms), so the loop keeps answering. The rendered HTML is cached per
(release id, SHA-256 of the notes): a page seen again costs a hash. A page waits at most `wait_seconds` for a
render (it may queue behind others, or the machine may be busy) and shows the notes as plain text meanwhile; the
render still finishes and is cached for the next view. At most `max_pending` renders wait for the pool; past
that, pages show plain text at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from markupsafe import Markup
from starlette.requests import Request

from ghingest.core.lru import LRU
from ghingest.dashboard.markdown import MAX_NOTES_CHARS, RENDER_BUDGET_SECONDS, plain_notes, render_notes

Key = tuple[int, str]


class NotesRenderer:
    def __init__(
        self,
        *,
        workers: int = 1,
        budget: float = RENDER_BUDGET_SECONDS,
        wait_seconds: float = 2 * RENDER_BUDGET_SECONDS,
        max_pending: int = 8,
        cache_entries: int = 512,
        cache_chars: int = 32 * 1024 * 1024,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ghingest-notes")
        self._budget = budget
        self._wait = wait_seconds
        self._max_pending = max_pending
        self._lock = threading.Lock()  # guards the cache and the pending renders (the pool's thread writes both)
        self._cache: LRU[Key, Markup] = LRU(max_entries=cache_entries, max_weight=cache_chars, weigh=len)
        self._pending: dict[Key, Future[Markup]] = {}
        self.renders = 0  # renders started (for tests and curiosity)

    async def html(self, release_id: int, text: str | None) -> Markup:
        """The release's notes as sanitised HTML, or as plain text when they do not render in time."""
        if not text:
            return Markup("")
        if len(text) > MAX_NOTES_CHARS:
            return plain_notes(text)  # never rendered: no need to hash megabytes
        key = (release_id, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest())
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            future = self._pending.get(key)
            if future is None:
                if len(self._pending) >= self._max_pending:
                    return plain_notes(text)
                future = self._pending[key] = self._executor.submit(self._render, key, text)
                self.renders += 1
        done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=self._wait)
        return done.pop().result() if done else plain_notes(text)

    def _render(self, key: Key, text: str) -> Markup:
        try:
            try:
                html = render_notes(text, budget=self._budget)
            except Exception:  # a parser bug on hostile notes must not fail the page: show them as text
                html = plain_notes(text)
            with self._lock:
                self._cache.put(key, html)
            return html
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def notes_of(request: Request) -> NotesRenderer:
    """The dashboard's notes renderer (set on `app.state` when the dashboard is mounted)."""
    notes: NotesRenderer = request.app.state.dashboard_notes
    return notes
