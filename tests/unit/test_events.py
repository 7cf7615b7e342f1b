"""Event records: indexed fields, tolerance for odd payloads, and the shape check for the claimed event."""

from __future__ import annotations

from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.errors import PayloadMismatch
from ghingest.core.events import check_shape, event_record


def test_release_payload_gives_every_indexed_field() -> None:
    record = event_record(delivery_id="d1", event="release", hook_id_header="42", payload=release_payload())
    assert record.action == "published"
    assert record.repository == "octo-org/octo-repo"
    assert record.organization == "octo-org"
    assert record.sender == "octocat"
    assert record.installation_id == 4242
    assert record.hook_id == 42


def test_unknown_future_events_are_kept_as_they_are() -> None:
    payload: dict[str, Any] = {"something": "new", "repository": {"full_name": "a/b"}}
    check_shape("brand_new_event", payload)
    record = event_record(delivery_id="d2", event="brand_new_event", hook_id_header=None, payload=payload)
    assert (record.event, record.action, record.repository) == ("brand_new_event", None, "a/b")


def test_odd_field_types_become_none_not_errors() -> None:
    payload = {"action": 5, "repository": "not an object", "sender": {"login": 7}, "installation": {"id": True}}
    record = event_record(delivery_id="d3", event="push", hook_id_header="abc", payload=payload)
    assert (record.action, record.repository, record.sender, record.installation_id, record.hook_id) == (
        None, None, None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("release", {"action": "published"}),
        ("release", {"action": "published", "release": {"id": "1"}}),
        ("release", {"action": "published", "release": []}),
        ("release", {"release": {"id": 1}}),
        ("issues", {"issue": {}}),
        ("pull_request", {"action": 3}),
    ],
)
def test_a_payload_that_does_not_fit_the_claimed_event_is_a_mismatch(event: str, payload: dict[str, Any]) -> None:
    with pytest.raises(PayloadMismatch):
        check_shape(event, payload)


def test_events_without_action_need_none() -> None:
    check_shape("push", {"ref": "refs/heads/main"})
    check_shape("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
