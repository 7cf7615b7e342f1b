"""Normalise a delivery's payload into an `EventRecord`, and check that the payload fits the claimed event.

`X-GitHub-Event` is not covered by the signature, so the processor does not trust it blindly. What an event's
payload must look like comes from GitHub's published webhook schemas (`core.github_events`, generated): an event
GitHub always sends with an `action` should carry one. Only where ghingest interprets a payload (`release`, which
becomes a release record) does a mismatch fail the delivery (`check_interpreted`); anywhere else it is recorded
as the event's `shape_warning`, and the event is still processed and forwarded (`shape_warning`). Unknown event
types are kept as they are: GitHub adds events, and none is ever dropped.

Every field is extracted defensively: a missing, oddly typed or out-of-range value becomes None, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ghingest.core.errors import PayloadMismatch
from ghingest.core.github_events import ACTIONS, EVENTS, EVENTS_WITH_ACTION
from ghingest.core.int64 import is_int64, parse_int64

# Objects GitHub's payloads carry under these keys whenever the key is present.
_OBJECT_KEYS = ("repository", "organization", "sender", "installation")


@dataclass(frozen=True, slots=True)
class EventRecord:
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    organization: str | None
    sender: str | None
    installation_id: int | None
    hook_id: int | None
    shape_warning: str | None = None  # how the payload does not fit its event's published schema, if it does not


def _text(obj: Any, key: str) -> str | None:
    if isinstance(obj, Mapping):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


def _integer(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if is_int64(value) else None


def _hook_id(value: str | None, payload: Mapping[str, Any]) -> int | None:
    if value is not None:
        try:
            return parse_int64(value, minimum=0)
        except ValueError:
            pass
    return _integer(payload, "hook_id")


def shape_warning(event: str, payload: Mapping[str, Any]) -> str | None:
    """How the payload does not fit what GitHub documents for `event` (None when it fits as far as is checked)."""
    if event in EVENTS_WITH_ACTION and not isinstance(payload.get("action"), str):
        return f"a {event!r} payload should carry a string 'action'"
    for key in _OBJECT_KEYS:
        if key in payload and payload[key] is not None and not isinstance(payload[key], Mapping):
            return f"{key!r} should be an object"
    return None


def check_interpreted(event: str, payload: Mapping[str, Any]) -> None:
    """Raise `PayloadMismatch` when an event that ghingest interprets cannot be interpreted from this payload."""
    if event == "release":
        if not isinstance(payload.get("action"), str):
            raise PayloadMismatch("a 'release' payload must have a string 'action'")
        release = payload.get("release")
        if not isinstance(release, Mapping) or _integer(release, "id") is None:
            raise PayloadMismatch("a 'release' payload must have a 'release' object with a 64-bit integer 'id'")


def event_record(
    *, delivery_id: str, event: str, hook_id_header: str | None, payload: Mapping[str, Any]
) -> EventRecord:
    """Extract the indexed fields. Tolerant: a missing or oddly typed field becomes None, never an error."""
    return EventRecord(
        delivery_id=delivery_id,
        event=event,
        action=_text(payload, "action"),
        repository=_text(payload.get("repository"), "full_name"),
        organization=_text(payload.get("organization"), "login"),
        sender=_text(payload.get("sender"), "login"),
        installation_id=_integer(payload.get("installation"), "id"),
        hook_id=_hook_id(hook_id_header, payload),
        shape_warning=shape_warning(event, payload),
    )


OTHER = "other"


def event_label(event: str) -> str:
    """`event` for metrics and logs when GitHub documents it, else `other`: the header is not signed, and every
    distinct value would make a metric series of its own."""
    return event if event in EVENTS else OTHER


def action_label(event: str, action: str | None) -> str | None:
    """`action` for logs when GitHub documents it for `event`, else `other`: logs never carry payload text."""
    if action is None:
        return None
    return action if action in ACTIONS.get(event, ()) else OTHER
