"""Parsing a request into a verified delivery: every rejection has its status, code and a clear detail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.core.delivery import ContentKind, IncomingDelivery, accept, check_head, check_payload, parse_payload
from ghingest.core.errors import (
    InvalidPayload,
    InvalidSignature,
    MissingHeader,
    PayloadTooLarge,
    UnsupportedMediaType,
    WebhookRejected,
)
from ghingest.core.signature import sign

SECRET = b"It's a Secret to Everybody"
BODY = orjson.dumps({"action": "published", "release": {"id": 1}})


def headers(body: bytes = BODY, **overrides: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "x-github-event": "release",
        "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "content-type": "application/json",
        "x-hub-signature-256": sign(body, SECRET),
        "x-github-hook-id": "42",
    }
    values.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return {k: v for k, v in values.items() if v is not None}


def receive(h: dict[str, str], body: bytes = BODY, **kwargs: Any) -> IncomingDelivery:
    return accept(check_head(h), h, body, secrets=[SECRET], **kwargs)


def test_a_valid_json_delivery_is_accepted_with_its_headers_and_exact_body() -> None:
    h = headers()
    delivery = receive(h)
    assert delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert delivery.event == "release"
    assert delivery.hook_id == "42"
    assert delivery.body == BODY
    assert delivery.headers == h
    assert delivery.secret_index == 0


def test_a_form_delivery_is_verified_over_the_raw_form_body() -> None:
    form = urlencode({"payload": BODY.decode()}).encode()
    h = headers(form, content_type="application/x-www-form-urlencoded")
    delivery = receive(h, form)
    assert delivery.content_kind is ContentKind.FORM
    assert parse_payload(ContentKind.FORM, form) == orjson.loads(BODY)


@pytest.mark.parametrize(
    ("override", "error", "status"),
    [
        ({"x_github_event": None}, MissingHeader, 400),
        ({"x_github_delivery": None}, MissingHeader, 400),
        ({"x_github_event": "Release!"}, MissingHeader, 400),
        ({"x_github_delivery": "bad id with spaces"}, MissingHeader, 400),
        ({"x_github_delivery": "poll:123:abc"}, MissingHeader, 400),  # the poller's namespace
        ({"content_type": None}, UnsupportedMediaType, 415),
        ({"content_type": "text/plain"}, UnsupportedMediaType, 415),
        ({"content_type": "application/xml"}, UnsupportedMediaType, 415),
        ({"content_length": str(25 * 1024 * 1024 + 1)}, PayloadTooLarge, 413),
    ],
)
def test_head_errors(override: dict[str, str | None], error: type[WebhookRejected], status: int) -> None:
    with pytest.raises(error) as caught:
        check_head(headers(**override))
    assert caught.value.status == status
    assert caught.value.detail


def test_an_id_in_the_pollers_namespace_is_refused_with_a_reason_but_not_one_that_only_looks_like_it() -> None:
    with pytest.raises(MissingHeader) as caught:
        check_head(headers(x_github_delivery="poll:42:0123abcd"))
    assert "'poll:'" in caught.value.detail
    assert "reserve" in caught.value.detail
    for allowed in ("Poll:42", "polling-1", "x-poll:1"):
        assert check_head(headers(x_github_delivery=allowed)).delivery_id == allowed


def test_json_with_charset_is_json() -> None:
    assert check_head(headers(content_type="application/json; charset=utf-8")).content_kind is ContentKind.JSON


def test_a_body_over_the_cap_is_refused_even_without_content_length() -> None:
    big = b"{" + b" " * 2048 + b"}"
    with pytest.raises(PayloadTooLarge):
        accept(check_head(headers(big)), headers(big), big, secrets=[SECRET], max_body_bytes=1024)


def test_signature_is_checked_before_the_payload() -> None:
    body = b"not json"
    with pytest.raises(InvalidSignature):
        receive(headers(body, x_hub_signature_256="sha256=" + "0" * 64), body)
    with pytest.raises(InvalidPayload, match="not valid JSON"):
        receive(headers(body), body)


@pytest.mark.parametrize(
    "body",
    [b"[]", b"1", b'"text"', b"null", b"{", b"\xff\xfe", b'{"a": "\xff"}', b'{"a": [1,]}', b'{"a": 1} x',
     b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"a": "\\ud800"}', b"\xef\xbb\xbf{}", b'{"a": 1e400}',
     b'{"a": -1e400}', b'{"a": ' + b"9" * 5000 + b"}", b'{"a": [1, {"b": 1' + b"0" * 400 + b"}]}"],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_400(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as caught:
        receive(headers(body), body)
    assert caught.value.status == 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


number_literals = st.sampled_from(["1e400", "-1e400", "1e308", "2e308", "9" * 5000, "9" * 400, "1" + "0" * 30,
                                   str(2**64), str(-(2**63) - 1), "1.5", "-0", "1E+2"])  # fmt: skip


@settings(max_examples=300)
@given(document=json_values, number=number_literals, cut=st.integers(min_value=0, max_value=200))
def test_the_receivers_check_agrees_with_the_processors_parser(document: object, number: str, cut: int) -> None:
    """Whatever the receiver accepts, the processor can parse; whatever it refuses, the processor would too."""
    with_number = b'{"n": ' + number.encode() + b', "doc": ' + orjson.dumps(document) + b"}"
    for body in (orjson.dumps(document), orjson.dumps(document)[:cut], with_number):
        try:
            parse_payload(ContentKind.JSON, body)
        except InvalidPayload:
            with pytest.raises(InvalidPayload):
                check_payload(ContentKind.JSON, body)
        else:
            check_payload(ContentKind.JSON, body)


@pytest.mark.parametrize("form", [b"other=1", b"payload=%5B%5D", b"\xff=\xff"])
def test_a_form_without_a_json_object_payload_is_400(form: bytes) -> None:
    h = headers(form, content_type="application/x-www-form-urlencoded")
    with pytest.raises(InvalidPayload):
        receive(h, form)


header_names = st.sampled_from(
    ["x-github-event", "x-github-delivery", "content-type", "x-hub-signature-256", "x-hub-signature",
     "content-length", "x-github-hook-id", "user-agent"]
) | st.text(min_size=1, max_size=20)  # fmt: skip


@settings(max_examples=500)
@given(
    h=st.dictionaries(header_names, st.text(max_size=80), max_size=8),
    body=st.binary(max_size=512),
    sign_it=st.booleans(),
)
def test_arbitrary_headers_and_bytes_are_accepted_or_rejected_never_crash(
    h: dict[str, str], body: bytes, sign_it: bool
) -> None:
    if sign_it:
        h = {**h, "x-hub-signature-256": sign(body, SECRET)}
    try:
        receive(h, body)
    except WebhookRejected as exc:
        status = exc.status
    else:
        status = 202
    assert status in {202, 400, 401, 413, 415}
