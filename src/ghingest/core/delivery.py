"""Turn an HTTP request's headers and exact body bytes into a verified `IncomingDelivery`, or a precise error.

This module performs no I/O: the receiver adapter reads the request and hands over a `Mapping[str, str]` of
lower-cased header names and the body bytes. The order of checks is fixed so that answers are predictable:
required headers (400) → content type (415) → size (413) → signature (401) → payload is a JSON object (400).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

import orjson

from ghingest.core import signature
from ghingest.core.errors import InvalidPayload, MissingHeader, PayloadTooLarge, UnsupportedMediaType
from ghingest.core.int64 import parse_int64
from ghingest.core.sources import POLL_DELIVERY_PREFIX

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MiB
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
HOOK_ID_HEADER = "x-github-hook-id"
CONTENT_TYPE_HEADER = "content-type"
CONTENT_LENGTH_HEADER = "content-length"

_DELIVERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ContentKind(StrEnum):
    """How a delivery's payload came: a JSON body, or a form with a `payload` field."""

    JSON = "json"
    FORM = "form"


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What can be known and checked before the body is read."""

    delivery_id: str
    event: str
    content_kind: ContentKind


@dataclass(frozen=True, slots=True)
class IncomingDelivery:
    """A verified delivery, ready to be appended to the inbox exactly as it arrived."""

    delivery_id: str
    event: str
    hook_id: str | None
    content_kind: ContentKind
    headers: Mapping[str, str]
    body: bytes
    secret_index: int


def content_kind_of(content_type: str) -> ContentKind:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return ContentKind.JSON
    if media_type == "application/x-www-form-urlencoded":
        return ContentKind.FORM
    if not media_type:
        raise UnsupportedMediaType("missing Content-Type header")
    raise UnsupportedMediaType(
        f"content type must be application/json or application/x-www-form-urlencoded, not {media_type[:80]!r}"
    )


def check_head(headers: Mapping[str, str], *, max_body_bytes: int = MAX_BODY_BYTES) -> RequestHead:
    """Check everything that can be checked before reading the body."""
    event = headers.get(EVENT_HEADER, "").strip()
    if not event:
        raise MissingHeader("missing X-GitHub-Event header")
    if not _EVENT_NAME.fullmatch(event):
        raise MissingHeader("X-GitHub-Event must be a GitHub event name such as 'release'")
    delivery_id = headers.get(DELIVERY_HEADER, "").strip()
    if not delivery_id:
        raise MissingHeader("missing X-GitHub-Delivery header")
    if not _DELIVERY_ID.fullmatch(delivery_id):
        raise MissingHeader("X-GitHub-Delivery must be 1-128 characters of letters, digits, '.', '_', ':' or '-'")
    if delivery_id.startswith(POLL_DELIVERY_PREFIX):  # the poller's deliveries: their source is read from the id
        raise MissingHeader(
            f"X-GitHub-Delivery must not start with {POLL_DELIVERY_PREFIX!r}: ghingest reserves it for polled releases"
        )
    kind = content_kind_of(headers.get(CONTENT_TYPE_HEADER, ""))
    declared = headers.get(CONTENT_LENGTH_HEADER)
    if declared is not None:
        try:
            too_large = parse_int64(declared.strip(), minimum=0) > max_body_bytes
        except ValueError:  # not a length (the server refuses such a request before it gets here)
            too_large = False
        if too_large:
            raise PayloadTooLarge(f"body exceeds {max_body_bytes} bytes")
    return RequestHead(delivery_id=delivery_id, event=event, content_kind=kind)


def loggable_ids(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The delivery id and event of a request, for logs, only when they are well-formed (else None)."""
    delivery_id = headers.get(DELIVERY_HEADER, "").strip()
    event = headers.get(EVENT_HEADER, "").strip()
    return (
        delivery_id if _DELIVERY_ID.fullmatch(delivery_id) else None,
        event if _EVENT_NAME.fullmatch(event) else None,
    )


def payload_bytes(kind: ContentKind, body: bytes) -> bytes:
    """The JSON document carried by the body: the body itself, or the `payload=` field of a form."""
    if kind is ContentKind.JSON:
        return body
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidPayload("form body is not valid application/x-www-form-urlencoded") from exc
    values = fields.get("payload")
    if not values:
        raise InvalidPayload("form body has no 'payload' field")
    return values[0].encode("utf-8")


def parse_payload(kind: ContentKind, body: bytes) -> dict[str, Any]:
    """Parse the body into the payload object; raise `InvalidPayload` when it is not a JSON object."""
    try:
        document = orjson.loads(payload_bytes(kind, body))
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(_why_not_json(exc)) from exc
    if not isinstance(document, dict):
        raise InvalidPayload("payload must be a JSON object")
    return document


_JSON_PROBLEMS = (
    ("infinity", "a number is beyond what a 64-bit float holds"),
    ("recursion", "it is nested too deeply"),
    ("utf-8", "it is not UTF-8"),
    ("surrogate", "it is not UTF-8"),
)


def _why_not_json(exc: orjson.JSONDecodeError) -> str:
    """A reason for people that never quotes the document: the parser's own message may one day."""
    message = exc.msg.lower()
    reason = next((text for key, text in _JSON_PROBLEMS if key in message), "at line %d, column %d")
    if "%d" in reason:
        reason %= (exc.lineno, exc.colno)
    return f"payload is not valid JSON: {reason}"


def check_payload(kind: ContentKind, body: bytes) -> None:
    """Raise `InvalidPayload` unless the body carries a JSON object that the processor can parse.

    The receiver's check *is* the processor's parser, so that nothing is acknowledged that processing would then
    refuse: a number beyond what an IEEE-754 double holds (`1e400`, a 5,000-digit integer — I-JSON, RFC 7493),
    invalid UTF-8, nesting deeper than 1,024 levels (ADR 0011: a validating scan that builds nothing
    was faster, and accepted what the processor then failed for good)."""
    parse_payload(kind, body)


def verify(
    head: RequestHead,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[bytes],
    allow_sha1: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> int:
    """Check the size, the signature and the payload's form; return the index of the secret that matched.
    (A plain function of plain values: the receiver runs it in a worker process for large bodies.)"""
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"body exceeds {max_body_bytes} bytes")
    secret_index = signature.verify(
        body,
        signature_256=headers.get(signature.SHA256_HEADER),
        signature_sha1=headers.get(signature.SHA1_HEADER),
        secrets=secrets,
        allow_sha1=allow_sha1,
    )
    check_payload(head.content_kind, body)
    return secret_index


def accept(
    head: RequestHead,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Sequence[bytes],
    allow_sha1: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> IncomingDelivery:
    """Verify the signature and the payload's form; return the delivery to record."""
    index = verify(head, headers, body, secrets=secrets, allow_sha1=allow_sha1, max_body_bytes=max_body_bytes)
    return incoming(head, headers, body, index)


def incoming(head: RequestHead, headers: Mapping[str, str], body: bytes, secret_index: int) -> IncomingDelivery:
    """The delivery to record, once `verify` has passed."""
    return IncomingDelivery(
        delivery_id=head.delivery_id,
        event=head.event,
        hook_id=headers.get(HOOK_ID_HEADER) or None,
        content_kind=head.content_kind,
        headers=dict(headers),
        body=body,
        secret_index=secret_index,
    )
