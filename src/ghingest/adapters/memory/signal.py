"""Wake-ups for `wait_for_work` and `wait_for_change`: an `asyncio.Event` per waiting event loop, set by `notify`.

The application's roles may run on more than one event loop (a test drives a server running in a thread), so a
notifier that runs on another loop than a waiter's sets that waiter's event through `call_soon_threadsafe`. A
notification is never lost to a waiter that registered before it; what a waiter must not miss is also checked
under the database lock right after registering (`MemoryDatabase.wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Signal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    def register(self) -> asyncio.Event:
        """The running loop's event, set by the next `notify`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            event = self._events.get(loop)
            if event is None:
                event = self._events[loop] = asyncio.Event()
            return event

    def notify(self) -> None:
        with self._lock:
            events, self._events = self._events, {}
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, event in events.items():
            if loop is running:
                event.set()
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
                    loop.call_soon_threadsafe(event.set)


async def wait(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` seconds have passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, timeout))
