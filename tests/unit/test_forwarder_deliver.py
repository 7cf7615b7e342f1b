"""`Forwarder.deliver`: the forwarder Lambda's batch, claimed elsewhere. A job whose destination the route table no
longer has is left as claimed (due again when its lease ends), never released straight back to its event source."""

from __future__ import annotations

import asyncio

from ghingest.adapters.memory import open_memory_backend
from ghingest.app.forwarder import Forwarder
from ghingest.app.metrics import Metrics
from ghingest.core.routing import EMPTY_TABLE, ForwardTarget
from ghingest.ports import ManualClock
from tests.contract.support import incoming, ingest


def test_a_job_of_a_destination_no_longer_routed_stays_claimed_until_its_lease_ends() -> None:
    async def scenario() -> None:
        clock = ManualClock()
        backend = open_memory_backend(clock=clock)
        await backend.resources.start()
        await ingest(backend, [incoming("d1")], clock, forwards={"d1": [ForwardTarget("gone", "old-route")]})
        (job,) = await backend.forwards.claim("gone", limit=10, lease_seconds=60)
        await Forwarder(backend.forwards, lambda: EMPTY_TABLE, metrics=Metrics()).deliver([job])
        assert await backend.forwards.claim("gone", limit=10, lease_seconds=60) == []  # not released
        clock.advance(61)
        (again,) = await backend.forwards.claim("gone", limit=10, lease_seconds=60)
        assert (again.id, again.attempts) == (job.id, 0)  # no attempt was made or recorded
        await backend.resources.close()

    asyncio.run(scenario())
