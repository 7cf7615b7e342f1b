"""HMAC signatures as GitHub computes them: verification over the exact body bytes, and signing for forwards.

Fail closed: a request is authentic only when one of the configured secrets produced its signature. Several
secrets may be active at once so that a secret can be rotated without dropping deliveries; the index of the secret
that matched is returned so that operators can tell when the old one stops being used.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from ghingest.core.errors import InvalidSignature, SignatureAlgorithmOff, SignatureMismatch, SignatureMissing

SHA256_HEADER = "x-hub-signature-256"
SHA1_HEADER = "x-hub-signature"
_SHA256_PREFIX = "sha256="
_SHA1_PREFIX = "sha1="
_SHA256_HEX_LEN = 64
_SHA1_HEX_LEN = 40
_HEX = frozenset("0123456789abcdefABCDEF")


def sign(body: bytes, secret: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub would send for `body` signed with `secret`."""
    return _SHA256_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def sign_sha1(body: bytes, secret: bytes) -> str:
    """The legacy `X-Hub-Signature` (SHA-1) value."""
    return _SHA1_PREFIX + hmac.new(secret, body, hashlib.sha1).hexdigest()


def _digest_of(value: str, prefix: str, hex_len: int) -> bytes:
    if not value.startswith(prefix):
        raise InvalidSignature(f"signature must start with {prefix!r}")
    hex_digest = value[len(prefix) :]
    if len(hex_digest) != hex_len or not _HEX.issuperset(hex_digest):
        raise InvalidSignature(f"signature must be {hex_len} hexadecimal characters after {prefix!r}")
    return bytes.fromhex(hex_digest)


def verify(
    body: bytes,
    *,
    signature_256: str | None,
    signature_sha1: str | None = None,
    secrets: Sequence[bytes],
    allow_sha1: bool = False,
) -> int:
    """Return the index of the secret that signed `body`, or raise `InvalidSignature`.

    `X-Hub-Signature-256` is always preferred. The SHA-1 `X-Hub-Signature` is considered only when `allow_sha1` is
    set and no SHA-256 signature was sent. Every secret is compared in constant time, and all of them are tried,
    so timing does not reveal which secret matched.
    """
    if not secrets:
        raise SignatureMismatch("no webhook secret is configured")
    if signature_256 is not None:
        expected = _digest_of(signature_256.strip(), _SHA256_PREFIX, _SHA256_HEX_LEN)
        algorithm = "sha256"
    elif allow_sha1 and signature_sha1 is not None:
        expected = _digest_of(signature_sha1.strip(), _SHA1_PREFIX, _SHA1_HEX_LEN)
        algorithm = "sha1"
    elif signature_sha1 is not None:
        raise SignatureAlgorithmOff(
            "missing X-Hub-Signature-256 header (SHA-1 signatures are off: GHINGEST_ALLOW_SHA1_SIGNATURES)"
        )
    else:
        raise SignatureMissing("missing X-Hub-Signature-256 header")
    matched = -1
    for index, secret in enumerate(secrets):
        actual = hmac.digest(secret, body, algorithm)  # one-shot, OpenSSL's fast path
        if hmac.compare_digest(actual, expected) and matched < 0:
            matched = index
    if matched < 0:
        raise SignatureMismatch("signature does not match any configured secret")
    return matched
