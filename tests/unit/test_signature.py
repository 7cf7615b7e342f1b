"""HMAC verification against GitHub's documented test vector and every way a signature can be wrong."""

from __future__ import annotations

import pytest

from ghingest.core.errors import InvalidSignature
from ghingest.core.signature import sign, sign_sha1, verify

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_documented_test_vector() -> None:
    assert sign(BODY, SECRET) == EXPECTED
    assert verify(BODY, signature_256=EXPECTED, secrets=[SECRET]) == 0


def test_tampered_body_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(b"Hello, World?", signature_256=EXPECTED, secrets=[SECRET])


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(BODY, signature_256=EXPECTED, secrets=[b"another secret"])


@pytest.mark.parametrize(
    "value",
    [
        EXPECTED[:-1],  # truncated
        EXPECTED + "0",  # too long
        EXPECTED[:-2] + "zz",  # not hex
        EXPECTED.removeprefix("sha256="),  # no prefix
        "sha1=" + "0" * 40,  # another algorithm in the SHA-256 header
        "sha256=",
        "",
    ],
)
def test_malformed_signatures_are_refused(value: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, signature_256=value, secrets=[SECRET])


def test_missing_signature_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify(BODY, signature_256=None, secrets=[SECRET])


def test_rotation_reports_which_secret_matched() -> None:
    old, new = b"old-secret-value", SECRET
    assert verify(BODY, signature_256=EXPECTED, secrets=[old, new]) == 1
    assert verify(BODY, signature_256=sign(BODY, old), secrets=[old, new]) == 0


def test_no_secret_configured_fails_closed() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, signature_256=EXPECTED, secrets=[])


def test_sha1_is_refused_unless_enabled() -> None:
    legacy = sign_sha1(BODY, SECRET)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(BODY, signature_256=None, signature_sha1=legacy, secrets=[SECRET])
    assert verify(BODY, signature_256=None, signature_sha1=legacy, secrets=[SECRET], allow_sha1=True) == 0


def test_sha256_is_preferred_over_sha1_when_both_are_sent() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, signature_256="sha256=" + "0" * 64, signature_sha1=sign_sha1(BODY, SECRET), secrets=[SECRET],
               allow_sha1=True)  # fmt: skip
