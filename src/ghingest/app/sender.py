"""Sign and send a payload exactly as GitHub's Hookshot does: the demo and smoke-test tool (`ghingest send`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from ghingest.core.signature import sign, sign_sha1

USER_AGENT = "GitHub-Hookshot/ghingest-send"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    headers: dict[str, str]
    body: bytes


def encoded(payload: bytes, *, form: bool) -> bytes:
    """The body for `payload` (JSON bytes) in either of GitHub's content types."""
    return urlencode({"payload": payload.decode("utf-8")}).encode("ascii") if form else payload


def hookshot_request(
    payload: bytes,
    *,
    event: str,
    secret: str,
    delivery_id: str | None = None,
    form: bool = False,
    hook_id: int = 424242,
    target_id: int = 186853002,
    target_type: str = "repository",
) -> SignedRequest:
    """The headers and body GitHub would send for `payload` (JSON bytes)."""
    body = encoded(payload, form=form)
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    key = secret.encode("utf-8")
    headers = {
        "Accept": "*/*",
        "Content-Type": content_type,
        "User-Agent": USER_AGENT,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Event": event,
        "X-GitHub-Hook-ID": str(hook_id),
        "X-GitHub-Hook-Installation-Target-ID": str(target_id),
        "X-GitHub-Hook-Installation-Target-Type": target_type,
        "X-Hub-Signature": sign_sha1(body, key),
        "X-Hub-Signature-256": sign(body, key),
    }
    return SignedRequest(headers=headers, body=body)


def send(url: str, request: SignedRequest, *, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(url, content=request.body, headers=request.headers, timeout=timeout)
