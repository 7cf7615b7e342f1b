"""The application on the NATS inbox: the receiver's answers when the cluster is down and after, a body over the
bus's max_payload, and the worker processing into the PostgreSQL store (`postgres+nats`); a store that keeps its
own inbox (SQLite) is refused beside a bus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.ports import EventQuery
from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until
from tests.contract.support import incoming
from tests.nats_cluster import NatsCluster, delete_stream, require_nats_server, unique_name
from tests.postgres_support import fresh_database

pytestmark = pytest.mark.slow


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Settings]]:
    """The store on PostgreSQL (a fresh database), unless a test says otherwise."""
    with fresh_database() as url:
        yield lambda **overrides: make_settings(**{"database_url": url, **overrides})


def test_a_store_that_keeps_its_own_inbox_is_refused_beside_a_bus(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from ghingest.app.settings import ConfigError

    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'g.db'}", bus_url="nats://127.0.0.1:4222")
    with pytest.raises(ConfigError, match="put the store on PostgreSQL"):
        Runtime.build(settings, run_worker=False)


def nats_settings(make_settings: Callable[..., Settings], cluster: NatsCluster, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bus_url": ",".join(cluster.urls),
        "bus_stream": unique_name("APP"),
        "bus_replicas": min(3, len(cluster.nodes)),
        "bus_publish_timeout": 1.5,
        "bus_max_bytes": 256 * 2**20,
    }
    values.update(overrides)
    return make_settings(**values)


def test_the_receiver_answers_503_while_the_cluster_is_down_and_recovers_by_itself(
    make_settings: Callable[..., Settings], own_cluster: NatsCluster
) -> None:
    settings = nats_settings(make_settings, own_cluster)
    runtime = Runtime.build(settings, run_worker=False)
    assert runtime.backend.name == "postgres+nats"
    try:
        with ThreadedServer(runtime) as server, httpx.Client(base_url=server.url, timeout=10) as client:
            assert post_webhook(client, signed(release(), delivery_id="up-1")).status_code == 202
            assert post_webhook(client, signed(release(), delivery_id="up-1")).status_code == 200
            own_cluster.kill_all()
            try:
                started = time.monotonic()
                answer = post_webhook(client, signed(release(), delivery_id="down-1"))
                assert time.monotonic() - started < settings.bus_publish_timeout + 1.0
                assert answer.status_code == 503
                assert answer.headers["retry-after"] == "5"
                assert answer.headers["content-type"] == "application/json"
                assert answer.json()["error"] == "store_unavailable"
                assert client.get("/readyz").status_code == 503
            finally:
                own_cluster.start_all()
            attempts = iter(range(1000))
            wait_until(
                lambda: (
                    post_webhook(client, signed(release(), delivery_id=f"back-{next(attempts)}")).status_code == 202
                ),
                timeout=30,
            )
            wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30)
    finally:
        delete_stream(own_cluster.urls, settings.bus_stream)


def test_a_body_over_the_bus_max_payload_is_refused_with_413(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    require_nats_server()
    small = NatsCluster(tmp_path / "small", nodes=1, max_payload=1024 * 1024).start()  # the server's default
    try:
        settings = nats_settings(make_settings, small)
        with (
            ThreadedServer(Runtime.build(settings, run_worker=False)) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            inbox = server.runtime.backend.inbox
            wait_until(lambda: inbox.capabilities.max_payload_bytes is not None)
            limit = inbox.capabilities.max_payload_bytes
            assert limit == 1024 * 1024 - 64 * 1024
            big = orjson.dumps(release()) + b" " * (2 * 1024 * 1024)
            answer = post_webhook(client, signed(big, delivery_id="big-1"))
            assert answer.status_code == 413
            assert answer.json()["error"] == "payload_too_large"
            assert str(limit) in answer.json()["detail"]
            assert post_webhook(client, signed(release(), delivery_id="small-1")).status_code == 202
    finally:
        small.stop()


def test_the_worker_processes_deliveries_from_nats_into_postgres(
    make_settings: Callable[..., Settings], own_cluster: NatsCluster
) -> None:
    settings = nats_settings(make_settings, own_cluster)
    runtime = Runtime.build(settings, run_worker=False)
    backend = runtime.backend
    count = 50

    async def main() -> tuple[int, int, int]:
        backend.resources.upgrade()
        await backend.resources.start()
        try:
            for n in range(count):
                payload = release(release_id=1000 + n) if n % 2 else release()
                delivery = incoming(f"w-{n}", payload=payload)
                assert await backend.inbox.append(delivery, received_at=time.time()) is True
            worker = runtime.worker()
            processed = await worker.drain()
            page = await backend.reads.list_events(EventQuery(limit=200))
            return processed, len(page.items), await backend.inbox.depth()
        finally:
            await backend.resources.close()

    try:
        processed, events, depth = asyncio.run(main())
    finally:
        delete_stream(own_cluster.urls, settings.bus_stream)
    assert processed == count
    assert events == count
    assert depth == 0
