"""The NATS inbox as a backend part: options from the settings, and its resources (connection, stream setup).

`open_nats_inbox(settings)` gives the inbox and its `Resources`; the factory puts that inbox in place of the
database backend's own and combines both resources (`CombinedResources`: upgrade, start and close both).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ghingest.adapters.nats.inbox import DELIVERY_MARGIN, JetStreamOptions, NatsInbox, provision
from ghingest.core.errors import StoreUnavailable
from ghingest.ports.backend import Backend, Resources
from ghingest.ports.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from ghingest.app.settings import Settings


def options_from_settings(settings: Settings) -> JetStreamOptions:
    return JetStreamOptions(
        servers=tuple(settings.bus_url),
        stream=settings.bus_stream,
        replicas=settings.bus_replicas,
        publish_timeout=settings.bus_publish_timeout,
        ack_wait=settings.worker_lease_seconds,
        max_deliver=settings.worker_max_attempts + DELIVERY_MARGIN,
        max_bytes=settings.bus_max_bytes,
    )


class NatsResources:
    """The inbox's connection; `upgrade` creates or updates the stream and the consumer."""

    def __init__(self, inbox: NatsInbox) -> None:
        self.inbox = inbox

    def upgrade(self) -> None:
        """Create or update the stream and consumer now, on a connection of its own (synchronous, like a schema
        migration: it runs on a thread, so it may be called with or without a running event loop)."""
        run_in_thread(_provision_once(self.inbox.options))

    async def start(self) -> None:
        await self.inbox.start()

    async def close(self) -> None:
        await self.inbox.close()


class CombinedResources:
    """A database backend's resources and the NATS inbox's, as one."""

    def __init__(self, *parts: Resources) -> None:
        self.parts = parts

    def upgrade(self) -> None:
        for part in self.parts:
            part.upgrade()

    async def start(self) -> None:
        for part in self.parts:
            await part.start()

    async def close(self) -> None:
        for part in reversed(self.parts):
            await part.close()


def open_nats_inbox(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> tuple[NatsInbox, NatsResources]:
    inbox = NatsInbox(options_from_settings(settings), clock=clock)
    return inbox, NatsResources(inbox)


def with_nats_inbox(backend: Backend, inbox: NatsInbox, resources: NatsResources) -> Backend:
    """`backend` with `inbox` in place of its own, both resources combined (`postgres` becomes `postgres+nats`)."""
    return dataclasses.replace(
        backend, name=f"{backend.name}+nats", inbox=inbox, resources=CombinedResources(backend.resources, resources)
    )


async def _provision_once(options: JetStreamOptions) -> None:
    import nats

    try:
        client = await asyncio.wait_for(
            nats.connect(
                servers=list(options.servers),
                name=f"{options.name}-upgrade",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                connect_timeout=max(1, round(options.connect_timeout)),
            ),
            timeout=options.connect_timeout * (len(options.servers) + 1),
        )
    except Exception as exc:
        raise StoreUnavailable(f"no NATS server reachable: {exc.__class__.__name__}") from None
    try:
        await provision(client, options)
    finally:
        await client.close()


def run_in_thread(coro: Coroutine[Any, Any, object]) -> None:
    """Run a coroutine to completion on a fresh event loop in a thread of its own (the caller may be inside a
    running loop, or have none); its exception is raised here."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name="nats-sync-call")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
