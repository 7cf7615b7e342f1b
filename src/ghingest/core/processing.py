"""The processor: a pure function from a recorded delivery to what the store must hold for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ghingest.core.delivery import ContentKind, parse_payload
from ghingest.core.events import EventRecord, check_shape, event_record
from ghingest.core.releases import ReleaseChange, release_change


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery as the inbox holds it."""

    seq: int
    delivery_id: str
    event: str
    hook_id: str | None
    content_kind: ContentKind
    headers: Mapping[str, str]
    body: bytes
    received_at: float
    secret_index: int
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Processed:
    delivery: StoredDelivery
    event: EventRecord
    release: ReleaseChange | None
    payload: Mapping[str, Any]


def process(delivery: StoredDelivery) -> Processed:
    """Parse and normalise one delivery. Raises `InvalidPayload` or `PayloadMismatch` for a delivery that can
    never be processed; any other exception is a bug or a transient fault and is retried."""
    payload = parse_payload(delivery.content_kind, delivery.body)
    check_shape(delivery.event, payload)
    event = event_record(
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        hook_id_header=delivery.hook_id,
        payload=payload,
    )
    release = None
    if delivery.event == "release":
        release = release_change(
            delivery_id=delivery.delivery_id,
            seq=delivery.seq,
            received_at=delivery.received_at,
            payload=payload,
        )
    return Processed(delivery=delivery, event=event, release=release, payload=payload)


def tolerant_event_record(delivery: StoredDelivery) -> EventRecord:
    """The best event record that can be made for a delivery that failed processing."""
    try:
        payload: Mapping[str, Any] = parse_payload(delivery.content_kind, delivery.body)
    except Exception:
        payload = {}
    return event_record(
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        hook_id_header=delivery.hook_id,
        payload=payload,
    )
