"""The processor: a pure function from a recorded delivery to what the store must hold for it.

`process` parses the payload, checks it against the claimed event, extracts the event record and (for `release`)
the release change, and matches the forwarding routes. `attempt` wraps it so that it never raises: every delivery
comes out as `Processed` or `Unprocessable`, whatever it contains, so the caller can always record an outcome.
Both are plain functions of plain values: the worker runs them inline for small deliveries and in a worker process
for large ones (`ghingest.app.offload`), where nothing but the small result travels back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ghingest.core.delivery import ContentKind, IncomingDelivery, parse_payload
from ghingest.core.errors import InvalidPayload, PayloadMismatch
from ghingest.core.events import EventRecord, check_interpreted, event_record
from ghingest.core.releases import ReleaseChange, release_change
from ghingest.core.routing import EMPTY_MATCHER, ForwardTarget, RouteMatcher

PERMANENT_ERRORS = (InvalidPayload, PayloadMismatch)
MAX_ERROR_CHARS = 500


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


def at_receipt(delivery: IncomingDelivery, *, seq: int, received_at: float) -> StoredDelivery:
    """An incoming delivery as an inbox records it: its receipt number and time, not attempted yet."""
    return StoredDelivery(
        seq=seq,
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        hook_id=delivery.hook_id,
        content_kind=delivery.content_kind,
        headers=dict(delivery.headers),
        body=bytes(delivery.body),
        received_at=received_at,
        secret_index=delivery.secret_index,
    )


@dataclass(frozen=True, slots=True)
class Processed:
    """What a delivery that could be processed comes to."""

    event: EventRecord
    release: ReleaseChange | None
    forwards: tuple[ForwardTarget, ...] = ()  # forward jobs to create with the outcome (the outbox)


@dataclass(frozen=True, slots=True)
class Unprocessable:
    """Processing raised. `permanent`: it can never succeed (the payload is invalid or does not fit its event);
    otherwise it may be a transient fault or a bug, worth retrying."""

    error: str
    permanent: bool
    fallback_event: EventRecord  # the best event record that could be made, to record with a final failure


Processor = Callable[[StoredDelivery, RouteMatcher], Processed]


def process(delivery: StoredDelivery, routes: RouteMatcher = EMPTY_MATCHER) -> Processed:
    """Parse and normalise one delivery. Raises `InvalidPayload` or `PayloadMismatch` for a delivery that can
    never be processed; any other exception is a bug or a transient fault."""
    payload = parse_payload(delivery.content_kind, delivery.body)
    check_interpreted(delivery.event, payload)
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
    forwards = routes.match(event=event.event, action=event.action, repository=event.repository, payload=payload)
    return Processed(event=event, release=release, forwards=forwards)


def attempt(
    delivery: StoredDelivery, routes: RouteMatcher = EMPTY_MATCHER, processor: Processor = process
) -> Processed | Unprocessable:
    """`processor(delivery, routes)`, or what went wrong: never raises (but for `BaseException`s such as
    `KeyboardInterrupt`)."""
    try:
        return processor(delivery, routes)
    except PERMANENT_ERRORS as exc:
        return Unprocessable(describe(exc), permanent=True, fallback_event=tolerant_event_record(delivery))
    except Exception as exc:
        return Unprocessable(describe(exc), permanent=False, fallback_event=tolerant_event_record(delivery))


def describe(exc: BaseException) -> str:
    """An error for the store (shown on the delivery's page): the exception's class and message, bounded."""
    return f"{exc.__class__.__name__}: {exc}"[:MAX_ERROR_CHARS]


_OWN_ERRORS = tuple(f"{cls.__name__}: " for cls in PERMANENT_ERRORS)


def loggable_error(error: str | None) -> str | None:
    """An error for the logs, which never carry payload text: ghingest's own messages whole (they name fields,
    never values), any other exception by its class alone (its message may quote the payload)."""
    if error is None or error.startswith(_OWN_ERRORS):
        return error
    head, sep, _ = error.partition(": ")
    return head if sep else error[:100]


class FailureKind(StrEnum):
    """Why a recorded delivery failed, as the dashboard and the API say it (`failure_kind`)."""

    SHAPE = "shape"  # the payload does not have the shape ghingest interprets: only a code change makes it succeed
    INVALID = "invalid"  # the body cannot be parsed at all: it fails again however often it is processed
    TRANSIENT = "transient"  # anything else (a fault of the moment, or a bug): reprocessing may succeed


FAILURE_EXPLANATIONS = {
    FailureKind.SHAPE: "Cannot succeed without a code change: the payload did not have the shape ghingest expects.",
    FailureKind.INVALID: "Cannot succeed: the body is not a payload ghingest can parse.",
    FailureKind.TRANSIENT: "May succeed when reprocessed: a transient fault (or a bug) stopped it.",
}


def failure_kind(error: str | None) -> FailureKind | None:
    """The kind of a stored processing error (`describe`'s text: the exception's class first); None without one."""
    if error is None:
        return None
    if error.startswith(f"{PayloadMismatch.__name__}: "):
        return FailureKind.SHAPE
    if error.startswith(f"{InvalidPayload.__name__}: "):
        return FailureKind.INVALID
    return FailureKind.TRANSIENT


def tolerant_event_record(delivery: StoredDelivery) -> EventRecord:
    """The best event record that can be made for a delivery that failed processing (never raises)."""
    try:
        payload: Mapping[str, Any] = parse_payload(delivery.content_kind, delivery.body)
        return event_record(
            delivery_id=delivery.delivery_id,
            event=delivery.event,
            hook_id_header=delivery.hook_id,
            payload=payload,
        )
    except Exception:
        return bare_event_record(delivery)


def bare_event_record(delivery: StoredDelivery) -> EventRecord:
    """An event record that takes nothing from the payload: what is recorded when nothing else can be."""
    return EventRecord(
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        action=None,
        repository=None,
        organization=None,
        sender=None,
        installation_id=None,
        hook_id=None,
    )
