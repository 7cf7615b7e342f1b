"""Whatever a delivery contains, its outcome is recorded, and it never holds back the others in its batch.

Arbitrary headers and JSON values (integers past 64 bits and past Python's 4,300-digit limit, floats, odd types
where objects belong, unicode digits in `X-GitHub-Hook-ID`) go through the whole processing path — a real SQLite
inbox and store, the worker, the recording transaction — appended straight to the inbox (as deliveries recorded
before a receiver rule existed would be). Every delivery must end `processed` or `failed`, the good delivery
claimed in the same batch must be processed, and the metrics must count exactly what was recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.app.metrics import Metrics
from ghingest.app.samples import release_payload
from ghingest.app.worker import Worker
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.retry import RetryPolicy
from ghingest.core.states import DeliveryStatus

hostile_ints = st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, -1, 0]) | st.integers()
hostile_scalars = (
    hostile_ints | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
    | st.text(max_size=20) | st.sampled_from(["²", "٣", "\x00", "9" * 30, "-1"])
)  # fmt: skip
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
known_keys = st.sampled_from(
    ["action", "release", "repository", "installation", "sender", "organization", "hook_id", "hook"]
)
release_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": hostile_values,
        "tag_name": hostile_values,
        "name": hostile_values,
        "draft": hostile_values,
        "created_at": hostile_values,
        "published_at": hostile_values,
        "author": hostile_values,
        "body": hostile_values,
    },
)
payloads = st.dictionaries(known_keys, hostile_values, max_size=6) | st.fixed_dictionaries(
    {"action": hostile_values, "release": release_objects | hostile_values}
)
hook_ids = (
    st.none() | st.sampled_from(["²", "٣٤", "9" * 5000, str(2**63), str(2**64), "12", " 7", ""]) | st.text(max_size=12)
)
events = st.sampled_from(["release", "push", "issues", "team_add", "security_and_analysis", "brand_new_event"])
huge_literals = st.sampled_from(["1e400", "-1e400", "9" * 5000, "1" + "0" * 400])


@st.composite
def hostile_delivery(draw: st.DrawFn) -> tuple[str, str | None, bytes]:
    event = draw(events)
    payload = draw(payloads)
    body = json.dumps(payload).encode()  # the standard library writes integers of any size
    if draw(st.booleans()):  # a number no parser of doubles holds, spliced in as raw JSON text
        body = body[:-1] + (b", " if payload else b"") + b'"n": ' + draw(huge_literals).encode() + b"}"
    return event, draw(hook_ids), body


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteDatabase]:
    path: Path = tmp_path_factory.mktemp("properties") / "p.db"
    db = SqliteDatabase(f"sqlite:///{path}")
    db.upgrade()
    asyncio.run(db.start())
    yield db
    asyncio.run(db.close())


def incoming(event: str, hook_id: str | None, body: bytes) -> IncomingDelivery:
    headers = {"x-github-event": event, **({"x-github-hook-id": hook_id} if hook_id is not None else {})}
    return IncomingDelivery(
        delivery_id=str(uuid.uuid4()),
        event=event,
        hook_id=hook_id,
        content_kind=ContentKind.JSON,
        headers=headers,
        body=body,
        secret_index=0,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(hostile_delivery(), min_size=1, max_size=5), good_at=st.integers(min_value=0, max_value=5))
def test_every_delivery_ends_processed_or_failed_and_good_ones_are_processed(
    database: SqliteDatabase, batch: list[tuple[str, str | None, bytes]], good_at: int
) -> None:
    good = incoming("release", "42", orjson.dumps(release_payload(release_id=7)))
    deliveries = [incoming(*item) for item in batch]
    deliveries.insert(min(good_at, len(deliveries)), good)
    metrics = Metrics()
    worker = Worker(
        database.inbox,
        database.store,
        metrics=metrics,
        retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002),
        batch_size=50,
    )

    async def scenario() -> None:
        for delivery in deliveries:
            assert await database.inbox.append(delivery, received_at=time.time())
        deadline = time.monotonic() + 20
        while await database.inbox.depth() > 0:
            assert time.monotonic() < deadline, "some deliveries were never settled"
            if not await worker.run_once():
                await asyncio.sleep(0.002)  # a retry is due in a millisecond or two
        statuses = {}
        for delivery in deliveries:
            view = await database.reads.get_delivery(delivery.delivery_id)
            assert view is not None
            statuses[delivery.delivery_id] = view.status
        assert set(statuses.values()) <= {DeliveryStatus.PROCESSED, DeliveryStatus.FAILED}
        assert statuses[good.delivery_id] is DeliveryStatus.PROCESSED
        processed = sum(status is DeliveryStatus.PROCESSED for status in statuses.values())
        counted = sum(
            sample.value
            for metric in metrics.registry.collect()
            for sample in metric.samples
            if sample.name == "ghingest_deliveries_total" and sample.labels["outcome"] == "processed"
        )
        assert counted == processed

    asyncio.run(scenario())
