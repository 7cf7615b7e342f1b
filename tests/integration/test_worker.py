"""The worker against a real SQLite store: retries with backoff, failure after the policy, no blocking."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import orjson

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.app.metrics import Metrics
from ghingest.app.samples import release_payload
from ghingest.app.worker import Worker
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.processing import Processed, StoredDelivery, process
from ghingest.core.retry import RetryPolicy
from ghingest.core.routing import RouteMatcher
from ghingest.core.states import DeliveryStatus


def incoming(delivery_id: str, release_id: int) -> IncomingDelivery:
    return IncomingDelivery(
        delivery_id=delivery_id,
        event="release",
        hook_id=None,
        content_kind=ContentKind.JSON,
        headers={"x-github-event": "release"},
        body=orjson.dumps(release_payload(release_id=release_id)),
        secret_index=0,
    )


def test_transient_errors_are_retried_and_a_poisoned_delivery_fails_without_blocking_others(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()

    def flaky(delivery: StoredDelivery, routes: RouteMatcher) -> Processed:
        calls[delivery.delivery_id] += 1
        if delivery.delivery_id == "always-broken":
            raise RuntimeError("parser bug")
        if delivery.delivery_id == "flaky" and calls["flaky"] < 3:
            raise ConnectionError("transient")
        return process(delivery, routes)

    database = SqliteDatabase(f"sqlite:///{tmp_path / 'w.db'}")
    database.upgrade()
    asyncio.run(database.start())
    worker = Worker(
        database.inbox,
        database.store,
        metrics=Metrics(),
        retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
        processor=flaky,
    )

    async def scenario() -> None:
        for delivery_id, release_id in (("always-broken", 1), ("flaky", 2), ("fine", 3)):
            await database.inbox.append(incoming(delivery_id, release_id), received_at=time.time())
        await worker.run_once()
        fine = await database.reads.get_delivery("fine")
        assert fine is not None
        assert fine.status is DeliveryStatus.PROCESSED
        deadline = time.monotonic() + 10
        while await database.inbox.depth() > 0:
            assert time.monotonic() < deadline, "retries never finished"
            await worker.run_once() or await asyncio.sleep(0.01)
        flaky_view = await database.reads.get_delivery("flaky")
        broken = await database.reads.get_delivery("always-broken")
        assert flaky_view is not None
        assert flaky_view.status is DeliveryStatus.PROCESSED
        assert flaky_view.attempts == 3
        assert broken is not None
        assert broken.status is DeliveryStatus.FAILED
        assert broken.attempts == 4
        assert broken.error == "RuntimeError: parser bug"
        assert calls["always-broken"] == 4

    try:
        asyncio.run(scenario())
    finally:
        asyncio.run(database.close())


def test_log_lines_never_carry_payload_text(tmp_path: Path) -> None:
    """The action and any exception message come from the payload: only documented actions and ghingest's own
    messages reach the logs."""
    import structlog.testing

    marker = "PAYLOAD-TEXT-" + "x" * 5000
    database = SqliteDatabase(f"sqlite:///{tmp_path / 'logs.db'}")
    database.upgrade()
    asyncio.run(database.start())

    def raising(delivery: StoredDelivery, routes: RouteMatcher) -> Processed:
        raise KeyError(marker)

    async def scenario() -> None:
        payload = {"action": marker, "issue": {"number": 1}}
        await database.inbox.append(
            IncomingDelivery(
                delivery_id="odd-action",
                event="issues",
                hook_id=None,
                content_kind=ContentKind.JSON,
                headers={},
                body=orjson.dumps(payload),
                secret_index=0,
            ),
            received_at=time.time(),
        )
        retry = RetryPolicy(max_attempts=1, base_delay=0.01)
        await Worker(database.inbox, database.store, metrics=Metrics(), retry=retry).run_once()
        await database.inbox.append(incoming("raises", 6), received_at=time.time())
        await Worker(database.inbox, database.store, metrics=Metrics(), retry=retry, processor=raising).run_once()

    try:
        with structlog.testing.capture_logs() as logs:
            asyncio.run(scenario())
    finally:
        asyncio.run(database.close())
    lines = [entry for entry in logs if entry.get("delivery_id") in ("odd-action", "raises")]
    assert len(lines) == 2
    assert lines[0]["action"] == "other"
    assert lines[1]["error"] == "KeyError"
    assert all(marker not in str(entry) for entry in logs)


def test_an_exhausted_claim_is_recorded_as_failed_without_being_processed() -> None:
    """A delivery the inbox will not hand out again (a broker's delivery limit, reached by workers crashing on it)
    is recorded as failed for good and settled, never processed once more nor left unsettled."""
    from dataclasses import replace

    from ghingest.adapters.memory import open_memory_backend
    from ghingest.app.worker import EXHAUSTED
    from ghingest.ports.inbox import Claimed, Inbox

    class LastDeliveryInbox:
        """The memory inbox, with one delivery id on its last allowed delivery."""

        def __init__(self, inner: Inbox, last: str) -> None:
            self._inner, self._last = inner, last
            self.capabilities = inner.capabilities

        async def claim(self, **kwargs: object) -> list[Claimed]:
            claimed = await self._inner.claim(**kwargs)  # type: ignore[arg-type]
            return [replace(c, exhausted=c.delivery.delivery_id == self._last) for c in claimed]

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    processed: list[str] = []

    def recording(delivery: StoredDelivery, routes: RouteMatcher) -> Processed:
        processed.append(delivery.delivery_id)
        return process(delivery, routes)

    async def scenario() -> None:
        backend = open_memory_backend("memory://")
        await backend.resources.start()
        inbox = LastDeliveryInbox(backend.inbox, "crashes-workers")
        worker = Worker(
            inbox,  # type: ignore[arg-type]
            backend.store,
            metrics=Metrics(),
            retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05),
            processor=recording,
        )
        for delivery_id, release_id in (("crashes-workers", 1), ("fine", 2)):
            await backend.inbox.append(incoming(delivery_id, release_id), received_at=time.time())
        assert await worker.run_once() == 2
        assert processed == ["fine"]
        failed = await backend.reads.get_delivery("crashes-workers")
        assert failed is not None
        assert failed.status is DeliveryStatus.FAILED
        assert failed.error == EXHAUSTED
        assert await backend.inbox.depth() == 0
        assert await worker.run_once() == 0  # settled: never claimed again
        await backend.resources.close()

    asyncio.run(scenario())
