"""Refused webhook requests, as counts a flood cannot blow up. This module performs no I/O.

A refusal becomes a `Rejection` (`observe`): when, why (`Reason`, from the error's `reason`), and what the request
said of itself that is safe to keep: the client's address, and the `X-GitHub-Event`, `X-GitHub-Delivery` and
`X-GitHub-Hook-ID` values only when each is well-formed (else the marker `MALFORMED`, never the value; absent: "").
Never the body, never a signature.

`Aggregator` folds rejections into buckets keyed by (minute, reason, client, event, hook id), each with its count,
first and last time and the newest delivery id. At most `max_keys_per_minute` distinct keys get a bucket of their
own each minute; past that a rejection is counted in its minute's and reason's *aggregated* bucket (client, event
and hook id `AGGREGATED`), which says so on the page. What is pending (not flushed yet) is bounded too
(`max_pending` buckets): past it, rejections are only counted as `dropped`. Adding is O(1), so the receiver calls
it on the request path; a flush task `drain`s the buckets to the `RejectionLog` port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from ghingest.core.delivery import DELIVERY_HEADER, EVENT_HEADER, HOOK_ID_HEADER, loggable_ids

MALFORMED = "(malformed)"  # a header sent but not well-formed: its value is not kept (no header may hold "(")
AGGREGATED = "~"  # the client, event and hook id of an aggregated bucket: no well-formed value is "~", and it
# sorts after every other, so that the list shows a minute's aggregated bucket before that reason's others
MINUTE = 60
MAX_KEYS_PER_MINUTE = 100
MAX_PENDING = 2_000

_HOOK_ID = re.compile(r"[0-9]{1,20}")


class Reason(StrEnum):
    """Why a request was refused (`WebhookRejected.reason`), finer than its HTTP status."""

    WRONG_SECRET = "wrong_secret"  # noqa: S105 (a reason, not a secret) - 401: a well-formed signature that none of the configured secrets made
    MISSING_SIGNATURE = "missing_signature"  # 401: no X-Hub-Signature-256
    MALFORMED_SIGNATURE = "malformed_signature"  # 401: not `sha256=` and 64 hexadecimal digits
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"  # 401: only a SHA-1 signature, with SHA-1 off
    BAD_HEADERS = "bad_headers"  # 400: X-GitHub-Event or X-GitHub-Delivery missing or malformed
    MALFORMED_PAYLOAD = "malformed_payload"  # 400: the body is not a JSON object (or a form carrying one)
    TOO_LARGE = "too_large"  # 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    FORBIDDEN_SOURCE = "forbidden_source"  # 403: outside the source allow-list

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def status(self) -> int:
        return _STATUSES[self]


_LABELS = {
    Reason.WRONG_SECRET: "wrong secret",
    Reason.MISSING_SIGNATURE: "missing signature",
    Reason.MALFORMED_SIGNATURE: "malformed signature",
    Reason.UNSUPPORTED_ALGORITHM: "SHA-1 signature (off)",
    Reason.BAD_HEADERS: "bad or missing headers",
    Reason.MALFORMED_PAYLOAD: "malformed payload",
    Reason.TOO_LARGE: "body too large",
    Reason.UNSUPPORTED_MEDIA_TYPE: "unsupported content type",
    Reason.FORBIDDEN_SOURCE: "source not allowed",
}
_STATUSES = {
    Reason.WRONG_SECRET: 401,
    Reason.MISSING_SIGNATURE: 401,
    Reason.MALFORMED_SIGNATURE: 401,
    Reason.UNSUPPORTED_ALGORITHM: 401,
    Reason.BAD_HEADERS: 400,
    Reason.MALFORMED_PAYLOAD: 400,
    Reason.TOO_LARGE: 413,
    Reason.UNSUPPORTED_MEDIA_TYPE: 415,
    Reason.FORBIDDEN_SOURCE: 403,
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused request, as far as it may be kept ("" where the request did not say, `MALFORMED` where what it
    said was not well-formed)."""

    at: float
    reason: Reason
    client: str
    event: str
    delivery_id: str
    hook_id: str


Key = tuple[int, Reason, str, str, str]  # (minute, reason, client, event, hook id)


@dataclass(frozen=True, slots=True)
class RejectionBucket:
    """The rejections of one key in one minute (`minute`: epoch seconds of its start). `aggregated`: the minute's
    and reason's rejections past the cap of distinct keys (client, event and hook id are then `AGGREGATED`);
    `delivery_id`: the newest request's ("" when none was well-formed)."""

    minute: int
    reason: Reason
    client: str
    event: str
    hook_id: str
    delivery_id: str
    count: int
    first_at: float
    last_at: float
    aggregated: bool = False

    @property
    def key(self) -> Key:
        return (self.minute, self.reason, self.client, self.event, self.hook_id)


def merge(stored: RejectionBucket, new: RejectionBucket) -> RejectionBucket:
    """Two buckets of one key as one (what every `RejectionLog` does when it records a bucket whose key it has):
    counts added, the earlier first time, the later last time and its delivery id (the other's when it has none)."""
    newer, older = (new, stored) if new.last_at >= stored.last_at else (stored, new)
    return replace(
        stored,
        count=stored.count + new.count,
        first_at=min(stored.first_at, new.first_at),
        last_at=newer.last_at,
        delivery_id=newer.delivery_id or older.delivery_id,
    )


def minute_of(at: float) -> int:
    return int(at // MINUTE) * MINUTE


def _well_formed(value: str | None, pattern: re.Pattern[str]) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    return value if pattern.fullmatch(value) else MALFORMED


def client_of(host: str | None) -> str:
    """The client address as an IP address's text, "" when unknown, `MALFORMED` when it is not an address."""
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return MALFORMED


def observe(reason: Reason, headers: Mapping[str, str], *, client: str | None, at: float) -> Rejection:
    """What is kept of a refused request with these (lower-cased) headers. A request refused for its source
    (`FORBIDDEN_SOURCE`) keeps its address only: nothing a sender outside GitHub wrote is worth keeping."""
    if reason is Reason.FORBIDDEN_SOURCE:
        return Rejection(at=at, reason=reason, client=client_of(client), event="", delivery_id="", hook_id="")
    delivery_id, event = loggable_ids(headers)
    return Rejection(
        at=at,
        reason=reason,
        client=client_of(client),
        event=event or (MALFORMED if headers.get(EVENT_HEADER, "").strip() else ""),
        delivery_id=delivery_id or (MALFORMED if headers.get(DELIVERY_HEADER, "").strip() else ""),
        hook_id=_well_formed(headers.get(HOOK_ID_HEADER), _HOOK_ID),
    )


class _Pending:
    __slots__ = ("aggregated", "count", "delivery_id", "first_at", "last_at")

    def __init__(self, first_at: float, *, aggregated: bool) -> None:
        self.count = 0
        self.first_at = first_at
        self.last_at = first_at
        self.delivery_id = ""
        self.aggregated = aggregated

    def add(self, count: int, first_at: float, last_at: float, delivery_id: str) -> None:
        self.count += count
        self.first_at = min(self.first_at, first_at)
        if last_at >= self.last_at:
            self.last_at = last_at
            self.delivery_id = delivery_id or self.delivery_id
        elif not self.delivery_id:
            self.delivery_id = delivery_id


class Aggregator:
    """Rejections folded into buckets until `drain`; bounded (module docstring). Not thread-safe: one event loop."""

    def __init__(self, *, max_keys_per_minute: int = MAX_KEYS_PER_MINUTE, max_pending: int = MAX_PENDING) -> None:
        self.max_keys_per_minute = max_keys_per_minute
        self.max_pending = max_pending
        self.dropped = 0  # rejections counted nowhere (pending full): for a metric
        self._pending: dict[Key, _Pending] = {}
        self._minute = -1
        self._keys: set[Key] = set()  # the distinct keys of `_minute` that got a bucket of their own

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, rejection: Rejection) -> bool:
        """Count `rejection`; True when it opened a pending bucket (the first of its key since the last `drain`:
        what the receiver logs, so that a flood writes no more log lines than buckets)."""
        minute = minute_of(rejection.at)
        if minute > self._minute:
            self._minute, self._keys = minute, set()
        key: Key = (minute, rejection.reason, rejection.client, rejection.event, rejection.hook_id)
        own = key in self._keys or len(self._keys) < self.max_keys_per_minute
        if own:
            self._keys.add(key)
        else:
            key = (minute, rejection.reason, AGGREGATED, AGGREGATED, AGGREGATED)
        return self._count(key, 1, rejection.at, rejection.at, rejection.delivery_id, aggregated=not own)

    def drain(self) -> list[RejectionBucket]:
        """Every pending bucket, oldest minute first; nothing is pending afterwards."""
        pending, self._pending = self._pending, {}
        return [
            RejectionBucket(
                minute=key[0],
                reason=key[1],
                client=key[2],
                event=key[3],
                hook_id=key[4],
                delivery_id=p.delivery_id,
                count=p.count,
                first_at=p.first_at,
                last_at=p.last_at,
                aggregated=p.aggregated,
            )
            for key, p in sorted(pending.items(), key=lambda item: item[0][0])
        ]

    def restore(self, buckets: Iterable[RejectionBucket]) -> None:
        """Put drained buckets back (their flush failed), merged with what came meanwhile, within `max_pending`."""
        for b in buckets:
            self._count(b.key, b.count, b.first_at, b.last_at, b.delivery_id, aggregated=b.aggregated)

    def _count(
        self, key: Key, count: int, first_at: float, last_at: float, delivery_id: str, *, aggregated: bool
    ) -> bool:
        """Whether a pending bucket was opened."""
        pending = self._pending.get(key)
        opened = pending is None
        if pending is None:
            if len(self._pending) >= self.max_pending:
                self.dropped += count
                return False
            pending = self._pending[key] = _Pending(first_at, aggregated=aggregated)
        pending.add(count, first_at, last_at, delivery_id)
        return opened
