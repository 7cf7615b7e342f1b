"""A lease in the store, kept by a background task: of several processes on one store, one at a time runs a
scheduled role (reconciliation, release tracking); when it stops or dies, another takes over within `ttl`.

A run with an end known in advance (a scheduled Lambda invocation) takes the lease once for as long as it may run
instead (`holding`), and gives it up when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator

from ghingest.app.logs import get_logger
from ghingest.app.scheduling import pause
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_sync import GitHubSyncState

log = get_logger("ghingest.lease")
DEFAULT_TTL = 60.0


def holder_id() -> str:
    """This process, for the store: host, pid and a random part (a restarted process is another holder)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """`lease()` says whether this process holds `name` now; `keep` takes and renews it (every third of `ttl`)."""

    def __init__(
        self, state: GitHubSyncState, name: str, *, holder: str, ttl: float = DEFAULT_TTL, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._state = state
        self.name = name
        self.holder = holder
        self._ttl = ttl
        self._clock = clock
        self.held = False

    def __call__(self) -> bool:
        return self.held

    async def renew(self) -> bool:
        try:
            held = await self._state.hold_lease(self.name, self.holder, until=self._clock.now() + self._ttl)
        except Exception as exc:  # the store is down: this process cannot know, so it does not hold it
            log.warning("lease_renewal_failed", lease=self.name, error=exc.__class__.__name__)
            held = False
        if held != self.held:
            log.info("lease_taken" if held else "lease_lost", lease=self.name, holder=self.holder)
        self.held = held
        return held

    async def keep(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.renew()
            await pause(stop, self._ttl / 3)
        await self.release()

    async def release(self) -> None:
        """Give the lease up if this process holds it (another may take it at once)."""
        if not self.held:
            return
        self.held = False
        try:
            await self._state.release_lease(self.name, self.holder)
        except Exception as exc:  # it runs out by itself within ttl
            log.warning("lease_release_failed", lease=self.name, error=exc.__class__.__name__)


@contextlib.asynccontextmanager
async def holding(
    state: GitHubSyncState, name: str, *, holder: str, ttl: float, clock: Clock = SYSTEM_CLOCK
) -> AsyncIterator[Lease]:
    """Try to take `name` for `ttl` seconds (no renewal: `ttl` covers the whole run); `lease.held` says whether it
    was; given up on the way out, whatever happened inside."""
    lease = Lease(state, name, holder=holder, ttl=ttl, clock=clock)
    await lease.renew()
    try:
        yield lease
    finally:
        await lease.release()
