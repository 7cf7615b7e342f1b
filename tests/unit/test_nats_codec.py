"""The NATS inbox's message format: subjects from hostile event names, message ids no delivery can collide with,
metadata that round-trips."""

from __future__ import annotations

import pytest

from ghingest.adapters.nats import codec
from ghingest.core.delivery import ContentKind
from ghingest.core.processing import StoredDelivery


@pytest.mark.parametrize("event", ["release", "a.b", "*", ">", "with space", "", "é" * 200, "x\r\ny"])
def test_an_event_name_becomes_one_bounded_subject_token(event: str) -> None:
    token = codec.subject_token(event)
    assert token
    assert len(token) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in token)


def test_a_requeued_copy_has_a_msg_id_no_delivery_id_can_take() -> None:
    from ghingest.core.delivery import _DELIVERY_ID

    stored = StoredDelivery(7, "x:requeue:abc", "release", "1", ContentKind.JSON, {"a": "b"}, b"{}", 1.5, 0)
    headers = codec.requeue_headers(stored, generation="abc")
    assert _DELIVERY_ID.fullmatch(headers[codec.MSG_ID]) is None
    back = codec.stored_delivery(seq=9, headers=headers, body=b"{}", attempts=2)
    assert (back.delivery_id, back.hook_id, back.headers, back.received_at, back.attempts) == (
        "x:requeue:abc", "1", {"a": "b"}, 1.5, 2,
    )  # fmt: skip
