"""Time for tests of the GitHub client: `Sleeper`, an injected `sleep` that records each wait and moves a
`ManualClock` (the one the client and the fake share) instead of sleeping."""

from __future__ import annotations

import asyncio

from ghingest.ports.clock import ManualClock


class Sleeper:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))
        self.clock.advance(seconds)
        await asyncio.sleep(0)
