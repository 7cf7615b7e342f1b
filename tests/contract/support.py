"""What contract tests share: deliveries to append, and the worker's loop (claim, process, record, settle) written
against the ports alone."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ghingest.app.samples import release_payload
from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.processing import Processed, StoredDelivery, attempt
from ghingest.core.routing import ForwardTarget
from ghingest.core.sources import POLL_DELIVERY_PREFIX, POLL_SOURCE, SOURCE_HEADER
from ghingest.ports import Claimed, Outcome, Settle, Settlement


def incoming(
    delivery_id: str,
    *,
    event: str = "release",
    payload: Mapping[str, Any] | None = None,
    hook_id: str | None = "42",
    body: bytes | None = None,
    secret_index: int = 1,
) -> IncomingDelivery:
    """A delivery as the receiver appends it (a release payload unless told otherwise)."""
    if body is None:
        body = orjson.dumps(payload if payload is not None else release_payload())
    return IncomingDelivery(
        delivery_id=delivery_id,
        event=event,
        hook_id=hook_id,
        content_kind=ContentKind.JSON,
        headers={"x-github-delivery": delivery_id, "x-github-event": event, "content-type": "application/json"},
        body=body,
        secret_index=secret_index,
    )


def polled(digest: str, **fields: Any) -> IncomingDelivery:
    """A release as the poller enters it (`core.tracking`): a `poll:<release id>:<digest>` delivery, marked as
    polled, whose payload is shaped as a webhook's: the API's release object and the repository's summary."""
    payload = release_payload(**fields)
    repository = payload["repository"]
    document = {
        "action": payload["action"],
        "release": payload["release"],
        "repository": {name: repository[name] for name in ("id", "full_name", "name", "html_url", "private")}
        | {"owner": {"login": repository["owner"]["login"]}},
    }
    delivery = incoming(f"{POLL_DELIVERY_PREFIX}{payload['release']['id']}:{digest}", payload=document, hook_id=None)
    return dataclasses.replace(delivery, headers={**delivery.headers, SOURCE_HEADER: POLL_SOURCE})


def outcome_of(delivery: StoredDelivery, forwards: Sequence[ForwardTarget] = ()) -> Outcome:
    """What the worker records for `delivery` (core.processing), with `forwards` as its forward jobs."""
    result = attempt(delivery)
    if isinstance(result, Processed):
        return Outcome(delivery=delivery, processed=dataclasses.replace(result, forwards=tuple(forwards)))
    return Outcome(delivery=delivery, error=result.error, fallback_event=result.fallback_event)


def settlement_of(claimed: Claimed, outcome: Outcome) -> Settlement:
    if outcome.processed is not None:
        return Settlement(claimed.handle, Settle.DONE)
    if outcome.retry_at is not None:
        return Settlement(claimed.handle, Settle.RETRY, outcome.retry_at)
    return Settlement(claimed.handle, Settle.FAILED)


async def process_all(backend: Any, forwards: Mapping[str, Sequence[ForwardTarget]] | None = None) -> list[Outcome]:
    """Claim, process, record and settle until nothing is due; the outcomes recorded, in order."""
    recorded: list[Outcome] = []
    while claimed := await backend.inbox.claim(limit=50, lease_seconds=60):
        outcomes = [outcome_of(c.delivery, (forwards or {}).get(c.delivery.delivery_id, ())) for c in claimed]
        await backend.store.record_outcomes(outcomes)
        await backend.inbox.settle([settlement_of(c, o) for c, o in zip(claimed, outcomes, strict=True)])
        recorded += outcomes
    return recorded


async def ingest(
    backend: Any,
    deliveries: Sequence[IncomingDelivery],
    clock: Any,
    *,
    forwards: Mapping[str, Sequence[ForwardTarget]] | None = None,
    spacing: float = 0.0,
) -> list[Outcome]:
    """Append `deliveries` in order (received `spacing` seconds apart on `clock`), then process them all."""
    for delivery in deliveries:
        assert await backend.inbox.append(delivery, received_at=clock.now()) is True
        clock.advance(spacing)
    return await process_all(backend, forwards)


async def let_waiters_start() -> None:
    """Give tasks just created a few turns of the loop, so that they are waiting (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)
