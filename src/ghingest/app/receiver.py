"""`POST /webhooks/github`: a bare ASGI callable on the hot path.

It does only what the request path must: parse headers, read the body (never more than the cap), verify the
signature and the payload's form (with the processor's own parser: nothing is acknowledged that processing would
refuse), and append the delivery durably. A large body is verified in a worker process (`Offload`): parsing
25 MiB takes up to a second, which must not stall the event loop every other request is answered on.
202 only after the append is committed; 200 for a delivery id already recorded; 503 with `Retry-After` when the
store cannot commit, or not within `ack_timeout` (always well inside GitHub's 10 s); 413 for a body over the cap or
over what the inbox holds (`InboxCapabilities.max_payload_bytes`). Every error is JSON.
With a source allow-list (`sources`, `app.hook_allowlist`), a request from elsewhere is refused first, before its
headers are parsed or a byte of its body is read: 403 `forbidden_source`, or 503 with `Retry-After` while no list
is loaded yet (`source_unknown`); both close the connection.
Every refusal (400, 401, 403, 413, 415) is counted in the rejected-requests log (`app.rejections.RejectionRecorder`:
synchronous and O(1), its writes batched by a task off the request path) and logged once per bucket, never with a
byte of the body or a signature.
A bare ASGI callable costs ~20 µs less per request than a framework route (../shared/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import MutableMapping, Sequence
from enum import Enum
from typing import Any, Protocol

import orjson

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.offload import Offload, OffloadFailed
from ghingest.app.rejections import RejectionRecorder
from ghingest.core import delivery as core_delivery
from ghingest.core.errors import InvalidSignature, PayloadTooLarge, StoreUnavailable, WebhookRejected
from ghingest.core.events import event_label
from ghingest.core.rejections import Reason
from ghingest.core.time import now
from ghingest.ports.inbox import Inbox
from ghingest.ports.store import Store

PATH = "/webhooks/github"
RETRY_AFTER_SECONDS = 5
ACK_TIMEOUT = 6.0  # seconds: a 503 rather than no answer within the 10 s GitHub waits

Scope = MutableMapping[str, Any]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_CLOSE = (b"connection", b"close")  # the body of a refused request is never read, so never drained either


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


class Verdict(Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"  # 403
    UNKNOWN = "unknown"  # no list to judge by yet: 503


class SourceCheck(Protocol):
    """Which clients deliveries are accepted from (`app.hook_allowlist.HookAllowlist`): an in-memory lookup."""

    def verdict(self, host: str | None) -> Verdict: ...

    def retry_after(self) -> int: ...


class WebhookReceiver:
    def __init__(
        self,
        inbox: Inbox,
        store: Store,
        *,
        secrets: Sequence[bytes],
        metrics: Metrics,
        allow_sha1: bool = False,
        max_body_bytes: int = core_delivery.MAX_BODY_BYTES,
        offload: Offload | None = None,
        ack_timeout: float = ACK_TIMEOUT,
        sources: SourceCheck | None = None,
        rejections: RejectionRecorder | None = None,
    ) -> None:
        if not secrets:
            raise ValueError("the receiver needs at least one webhook secret")
        self._inbox = inbox
        self._store = store
        self._secrets = tuple(secrets)
        self._metrics = metrics
        self._allow_sha1 = allow_sha1
        self._max_body = max_body_bytes
        self._offload = offload or Offload()
        self._ack_timeout = ack_timeout
        self._sources = sources
        self._rejections = rejections
        # A plain function of plain values, so that it can run in the worker process too.
        self._verify = functools.partial(
            core_delivery.verify, secrets=self._secrets, allow_sha1=allow_sha1, max_body_bytes=max_body_bytes
        )
        self._log = get_logger("ghingest.receiver")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self._sources is not None:
            client = scope.get("client")
            host = client[0] if client else None
            verdict = self._sources.verdict(host)
            if verdict is not Verdict.ALLOWED:
                await self._refuse_source(send, host, verdict, self._sources)
                return
        if scope["method"] != "POST":
            await respond_json(send, 405, {"error": "method_not_allowed", "detail": "use POST"}, [(b"allow", b"POST")])
            return
        started = time.perf_counter()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            limit = self._body_limit()
            head = core_delivery.check_head(headers, max_body_bytes=limit)
            body = await _read_body(receive, limit)
            if self._offload.inline(len(body)):
                secret_index = self._verify(head, headers, body)
            else:
                secret_index = await self._offload.run(len(body), self._verify, head, headers, body)
            delivery = core_delivery.incoming(head, headers, body, secret_index)
        except WebhookRejected as exc:
            self._rejected(exc, scope, headers, started)
            await respond_json(send, exc.status, {"error": exc.code, "detail": exc.detail})
            return
        except ClientGone:
            return
        except OffloadFailed:
            await self._unavailable(send, head.event, head.delivery_id, "the verifying process died")
            return
        try:
            received_at = now()
            async with asyncio.timeout(self._ack_timeout):
                stored = await self._inbox.append(delivery, received_at=received_at)
                if not stored:  # a delivery id already recorded: this hook's sighting of it, durably, first
                    await self._store.record_sighting(delivery, received_at=received_at)
        except StoreUnavailable as exc:
            await self._unavailable(send, delivery.event, delivery.delivery_id, str(exc)[:200])
            return
        except PayloadTooLarge as exc:  # the inbox refused its size (its limit was not known before the request)
            self._rejected(exc, scope, headers, started)
            await respond_json(send, exc.status, {"error": exc.code, "detail": exc.detail})
            return
        except TimeoutError:  # not acknowledged: it may still commit, and a redelivery is then a duplicate
            await self._unavailable(send, delivery.event, delivery.delivery_id, "the commit took too long")
            return
        label = event_label(delivery.event)
        if stored:
            self._metrics.deliveries.labels(label, "accepted").inc()
            await respond_json(send, 202, {"delivery_id": delivery.delivery_id})
        else:
            self._metrics.deliveries.labels(label, "duplicate").inc()
            await respond_json(send, 200, {"delivery_id": delivery.delivery_id, "duplicate": True})

    def _body_limit(self) -> int:
        """The largest body accepted: the configured cap, or less when the inbox holds less (a NATS server's
        `max_payload`, known once connected: `InboxCapabilities.max_payload_bytes`)."""
        inbox_max = self._inbox.capabilities.max_payload_bytes
        return self._max_body if inbox_max is None else min(self._max_body, inbox_max)

    async def _unavailable(self, send: Any, event: str, delivery_id: str, reason: str) -> None:
        self._metrics.deliveries.labels(event_label(event), "unavailable").inc()
        self._log.error("delivery.unavailable", delivery_id=delivery_id, github_event=event, reason=reason)
        await respond_json(
            send,
            503,
            {"error": "store_unavailable", "detail": "the delivery could not be recorded; retry later"},
            [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
        )

    async def _refuse_source(self, send: Any, host: str | None, verdict: Verdict, sources: SourceCheck) -> None:
        """A request from outside the allow-list, or one that cannot be judged yet. Only its address is logged:
        nothing the sender wrote (not even a delivery id) is worth a line from a source that is not GitHub."""
        self._metrics.deliveries.labels("unverified", "rejected" if verdict is Verdict.REFUSED else "unavailable").inc()
        if verdict is Verdict.REFUSED:
            self._metrics.rejections.labels("forbidden_source").inc()
            if self._rejections is None or self._rejections.note(Reason.FORBIDDEN_SOURCE, {}, host):
                self._log.warning("delivery.refused_source", client=host, outcome="forbidden_source", status=403)
            detail = "deliveries are accepted only from GitHub's webhook addresses"
            await respond_json(send, 403, {"error": "forbidden_source", "detail": detail}, [_CLOSE])
            return
        self._metrics.rejections.labels("source_unknown").inc()
        self._log.warning("delivery.source_unknown", client=host, outcome="source_unknown", status=503)
        retry_after = str(sources.retry_after())
        detail = "GitHub's webhook addresses are not known yet; retry later"
        await respond_json(
            send, 503, {"error": "source_unknown", "detail": detail}, [(b"retry-after", retry_after.encode()), _CLOSE]
        )

    def _rejected(self, exc: WebhookRejected, scope: Scope, headers: dict[str, str], started: float) -> None:
        """Count, record (`RejectionRecorder`: no I/O here) and log a refusal; the log line only for the first of
        its bucket since the last flush, so that a flood writes no more lines than the log keeps buckets."""
        # Rejected requests are unauthenticated: their event name never becomes a metric label (cardinality).
        self._metrics.deliveries.labels("unverified", "rejected").inc()
        self._metrics.rejections.labels(exc.code).inc()
        if isinstance(exc, InvalidSignature):
            self._metrics.signature_failures.inc()
        if self._rejections is not None:
            client = scope.get("client")
            if not self._rejections.note(Reason(exc.reason), headers, client[0] if client else None):
                return
        delivery_id, event = core_delivery.loggable_ids(headers)
        self._log.warning(
            "delivery.rejected",
            delivery_id=delivery_id,
            github_event=event,
            outcome=exc.code,
            reason=exc.reason,
            status=exc.status,
            detail=exc.detail,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )


async def _read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body exceeds {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond_json(
    send: Any, status: int, document: dict[str, Any], extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = orjson.dumps(document)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
