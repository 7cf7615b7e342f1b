"""How a delivery travels as a JetStream message: its subject, its headers, its body as the payload.

- Subject `<prefix>.<event>`: one subject per GitHub event type (the event name, sanitised into one valid subject
  token: anything but letters, digits, `_` and `-` becomes `_`), so that `nats stream view` and subject filters
  can tell them apart. The event itself travels in the metadata, exactly.
- `Nats-Msg-Id`: the dedupe key (docs/adr/0010-dedupe-key.md): the delivery id, or for a requeued delivery the
  delivery id and a requeue generation (a fresh id, which the duplicate window does not swallow).
- `Ghingest-Delivery`: the delivery's metadata (id, event, hook id, content kind, received_at, secret index and the
  request's headers) as ASCII-only JSON: no header can break the NATS header block, whatever a request carried.
- The payload is the body, byte for byte.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.processing import StoredDelivery

MSG_ID = "Nats-Msg-Id"
META = "Ghingest-Delivery"
EVENT = "Ghingest-Event"  # the subject's token again, for people reading the stream
# Room kept for the headers inside the server's max_payload (which counts headers and body together).
HEADER_ROOM = 64 * 1024

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TOKEN = 64


def subject_token(event: str) -> str:
    """The event name as one subject token (no `.`, `*`, `>` or whitespace), bounded, never empty."""
    return _NOT_TOKEN.sub("_", event)[:_MAX_TOKEN] or "_"


def headers_for(
    *,
    msg_id: str,
    delivery_id: str,
    event: str,
    hook_id: str | None,
    content_kind: ContentKind,
    headers: Any,
    received_at: float,
    secret_index: int,
) -> dict[str, str]:
    meta = {
        "id": delivery_id,
        "event": event,
        "hook_id": hook_id,
        "kind": content_kind.value,
        "received_at": received_at,
        "secret_index": secret_index,
        "headers": dict(headers),
    }
    return {
        MSG_ID: msg_id,
        EVENT: subject_token(event),
        META: json.dumps(meta, ensure_ascii=True, separators=(",", ":")),
    }


def incoming_headers(delivery: IncomingDelivery, *, received_at: float) -> dict[str, str]:
    return headers_for(
        msg_id=delivery.delivery_id,
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        hook_id=delivery.hook_id,
        content_kind=delivery.content_kind,
        headers=delivery.headers,
        received_at=received_at,
        secret_index=delivery.secret_index,
    )


def requeue_headers(delivery: StoredDelivery, *, generation: str) -> dict[str, str]:
    return headers_for(
        # `/` is never in a delivery id (core.delivery): no delivery can take a requeued copy's msg id
        msg_id=f"{delivery.delivery_id}/requeue/{generation}",
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        hook_id=delivery.hook_id,
        content_kind=delivery.content_kind,
        headers=delivery.headers,
        received_at=delivery.received_at,
        secret_index=delivery.secret_index,
    )


class BadMessage(ValueError):
    """A message in the stream that ghingest did not write (no or unreadable metadata)."""


def stored_delivery(*, seq: int, headers: dict[str, str] | None, body: bytes, attempts: int) -> StoredDelivery:
    raw = (headers or {}).get(META)
    if raw is None:
        raise BadMessage("the message has no Ghingest-Delivery header")
    try:
        meta = json.loads(raw)
        return StoredDelivery(
            seq=seq,
            delivery_id=str(meta["id"]),
            event=str(meta["event"]),
            hook_id=None if meta["hook_id"] is None else str(meta["hook_id"]),
            content_kind=ContentKind(meta["kind"]),
            headers={str(k): str(v) for k, v in meta["headers"].items()},
            body=body,
            received_at=float(meta["received_at"]),
            secret_index=int(meta["secret_index"]),
            attempts=attempts,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadMessage(f"unreadable Ghingest-Delivery header: {exc.__class__.__name__}") from None
