"""Errors of the core. Every error that maps to an HTTP answer carries its status and a stable code.

GhingestError
├── WebhookRejected            (a request GitHub sent that we refuse; status 4xx)
│   ├── MissingHeader          400 missing_header
│   ├── UnsupportedMediaType   415 unsupported_media_type
│   ├── PayloadTooLarge        413 payload_too_large
│   ├── InvalidSignature       401 invalid_signature (a malformed signature value)
│   │   ├── SignatureMissing         no X-Hub-Signature-256 (nor an accepted SHA-1 one)
│   │   ├── SignatureAlgorithmOff    only an X-Hub-Signature (SHA-1), with SHA-1 signatures off
│   │   └── SignatureMismatch        well-formed, made by none of the configured secrets (a wrong secret)
│   └── InvalidPayload         400 invalid_payload
├── PayloadMismatch            (the payload does not fit the claimed event; permanent processing failure)
└── StoreUnavailable           (the store could not commit; 503 with Retry-After)
"""

from __future__ import annotations


class GhingestError(Exception):
    """Base of every error ghingest raises on purpose."""


class WebhookRejected(GhingestError):
    """`status` and `code` are the HTTP answer's; `reason` is what the rejected-requests log records it as (one of
    `core.rejections.Reason`, finer than `code`: a wrong secret and a missing signature are both 401s)."""

    status: int = 400
    code: str = "bad_request"
    reason: str = "bad_headers"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MissingHeader(WebhookRejected):
    status = 400
    code = "missing_header"


class UnsupportedMediaType(WebhookRejected):
    status = 415
    code = "unsupported_media_type"
    reason = "unsupported_media_type"


class PayloadTooLarge(WebhookRejected):
    status = 413
    code = "payload_too_large"
    reason = "too_large"


class InvalidSignature(WebhookRejected):
    status = 401
    code = "invalid_signature"
    reason = "malformed_signature"


class SignatureMissing(InvalidSignature):
    reason = "missing_signature"


class SignatureAlgorithmOff(InvalidSignature):
    reason = "unsupported_algorithm"


class SignatureMismatch(InvalidSignature):
    reason = "wrong_secret"


class InvalidPayload(WebhookRejected):
    status = 400
    code = "invalid_payload"
    reason = "malformed_payload"


class PayloadMismatch(GhingestError):
    """The payload's shape does not fit the event named in `X-GitHub-Event` (which the signature does not cover)."""


class StoreUnavailable(GhingestError):
    """The store could not commit; the caller must not acknowledge."""
