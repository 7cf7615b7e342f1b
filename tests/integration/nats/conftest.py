"""NATS integration fixtures: the shared cluster (non-destructive tests, a stream each) and a cluster of this
module's own (tests that kill nodes), plus an inbox opened on either."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from ghingest.adapters.nats import JetStreamOptions, NatsInbox, NatsResources
from tests.nats_cluster import NatsCluster, delete_stream, require_nats_server, shared_cluster, unique_name

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def cluster() -> NatsCluster:
    return shared_cluster()


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    require_nats_server()
    cluster = NatsCluster(tmp_path_factory.mktemp("nats-own")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def open_inbox(cluster: NatsCluster, **options: Any) -> AsyncIterator[NatsInbox]:
    values: dict[str, Any] = {"stream": unique_name("IT"), "replicas": 3, "ack_wait": 30.0, "max_bytes": 256 * 2**20}
    values.update(options)
    inbox = NatsInbox(JetStreamOptions(servers=cluster.urls, **values))
    resources = NatsResources(inbox)
    resources.upgrade()
    await resources.start()
    try:
        yield inbox
    finally:
        await resources.close()
        delete_stream(cluster.urls, inbox.options.stream)


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Await `check()` until it returns something truthy (exceptions count as not yet); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
        except Exception:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)  # a poll with a deadline, not a synchronisation by sleeping
