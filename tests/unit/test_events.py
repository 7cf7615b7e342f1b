"""Event records: indexed fields, tolerance for odd payloads, and the shape checks for the claimed event."""

from __future__ import annotations

from typing import Any

import pytest

from ghingest.app.samples import release_payload
from ghingest.core.errors import PayloadMismatch
from ghingest.core.events import check_interpreted, event_record, shape_warning
from ghingest.core.github_events import ACTIONS, EVENTS, EVENTS_WITH_ACTION


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
    check_interpreted("brand_new_event", payload)
    record = event_record(delivery_id="d2", event="brand_new_event", hook_id_header=None, payload=payload)
    assert (record.event, record.action, record.repository) == ("brand_new_event", None, "a/b")
    assert record.shape_warning is None


def test_odd_field_types_become_none_not_errors() -> None:
    payload = {"action": 5, "repository": "not an object", "sender": {"login": 7}, "installation": {"id": True}}
    record = event_record(delivery_id="d3", event="push", hook_id_header="abc", payload=payload)
    assert (record.action, record.repository, record.sender, record.installation_id, record.hook_id) == (
        None, None, None, None, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "published"},
        {"action": "published", "release": {"id": "1"}},
        {"action": "published", "release": []},
        {"action": "published", "release": {"id": 2**63}},
        {"action": "published", "release": {"id": True}},
        {"release": {"id": 1}},
        {"action": 7, "release": {"id": 1}},
    ],
)
def test_a_release_that_cannot_be_interpreted_is_a_mismatch(payload: dict[str, Any]) -> None:
    with pytest.raises(PayloadMismatch):
        check_interpreted("release", payload)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("issues", {"issue": {}}),
        ("pull_request", {"action": 3}),
        ("push", {"repository": ["not", "an", "object"]}),
    ],
)
def test_elsewhere_a_mismatch_is_a_warning_on_the_event_not_a_failure(event: str, payload: dict[str, Any]) -> None:
    check_interpreted(event, payload)
    assert shape_warning(event, payload) is not None
    assert event_record(delivery_id="d", event=event, hook_id_header=None, payload=payload).shape_warning


def test_events_without_action_need_none() -> None:
    for event, payload in (("push", {"ref": "refs/heads/main"}), ("ping", {"zen": "Keep it.", "hook_id": 1})):
        check_interpreted(event, payload)
        assert shape_warning(event, payload) is None


@pytest.mark.parametrize("event", ["team_add", "security_and_analysis", "push", "create", "delete", "ping"])
def test_events_github_sends_without_an_action_are_not_expected_to_carry_one(event: str) -> None:
    assert event in EVENTS
    assert event not in EVENTS_WITH_ACTION
    assert shape_warning(event, {"repository": {"full_name": "a/b"}}) is None


def test_the_vocabulary_is_githubs() -> None:
    assert {"release", "issues", "pull_request", "workflow_run", "sub_issues", "projects_v2"} <= EVENTS_WITH_ACTION
    assert set(ACTIONS["release"]) == {"created", "deleted", "edited", "prereleased", "published", "released",
                                       "unpublished"}  # fmt: skip
    assert "repository_dispatch" in EVENTS_WITH_ACTION  # any action, so none is listed
    assert EVENTS_WITH_ACTION <= EVENTS


@pytest.mark.parametrize("header", ["²", "٣٤", "1_000", " 42", "-1", "9" * 5000, str(2**63), "+7", "0x10", ""])
def test_hook_id_header_takes_ascii_digits_within_64_bits_only(header: str) -> None:
    record = event_record(delivery_id="d", event="push", hook_id_header=header, payload={})
    assert record.hook_id is None


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**4000, 1.5, "12", None, [1]])
def test_ids_that_do_not_fit_64_bits_become_none(value: Any) -> None:
    payload = {"installation": {"id": value}, "hook_id": value}
    record = event_record(delivery_id="d", event="push", hook_id_header=None, payload=payload)
    assert (record.installation_id, record.hook_id) == (None, None)
