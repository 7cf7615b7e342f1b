"""The listening server of `serve`, `receiver` and `dashboard`: uvicorn, which tells the runtime when it begins to
shut down.

uvicorn's graceful shutdown stops accepting, waits for the open connections to finish their responses (at most
`timeout_graceful_shutdown` seconds), and only then runs the lifespan's shutdown. A dashboard's live stream
(`GET /live`) is a response that does not finish by itself: `Listener` calls `Runtime.begin_shutdown` first, the
streams say goodbye and end at once, and the server goes on to drain the runtime without waiting for them
(docs/adr/0026-live-forwards-and-shutdown.md).

A SIGTERM that shuts the server down is a clean stop, exit status 0 (`exit_cleanly_on_sigterm`): uvicorn raises the
signal again once it has shut down, to die of it, which `ghingest worker` and `ghingest forwarder` never do either.
Once it has stopped, everything is closed: the interpreter's teardown need not collect the heap the process is
about to drop (`exit_promptly`; on a busy host that collection alone took longer than the rest of the stop).
"""

from __future__ import annotations

import gc
import signal
import socket
from types import FrameType

import uvicorn

from ghingest.app.runtime import Runtime


class Listener(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.runtime.begin_shutdown()
        await super().shutdown(sockets=sockets)


def exit_cleanly_on_sigterm() -> None:
    """Called just before the server runs: a SIGTERM raised again once it has shut down (its own handler is in
    place while it runs) changes nothing, and the process exits 0."""
    signal.signal(signal.SIGTERM, _stopped_already)


def _stopped_already(_signum: int, _frame: FrameType | None) -> None:
    pass


def exit_promptly() -> None:
    """The server stopped and closed what it opened: no garbage collection at the interpreter's exit (objects
    are still released as their references go; only cycles are left to the process's end)."""
    gc.freeze()
