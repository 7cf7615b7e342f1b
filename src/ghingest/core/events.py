"""Normalise a delivery's payload into an `EventRecord`, and check that the payload fits the claimed event.

`X-GitHub-Event` is not covered by the signature, so the processor does not trust it blindly: an event GitHub
always sends with an `action` must have one, and a `release` must carry a `release` object with an `id`.
Unknown event types are kept as they are: GitHub adds events, and none is ever dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ghingest.core.errors import PayloadMismatch

# Events whose payloads always carry an `action` (GitHub's webhook events and payloads reference).
EVENTS_WITH_ACTION: frozenset[str] = frozenset(
    {
        "branch_protection_configuration", "branch_protection_rule", "check_run", "check_suite",
        "code_scanning_alert", "commit_comment", "custom_property", "custom_property_values",
        "dependabot_alert", "deploy_key", "deployment", "deployment_protection_rule", "deployment_review",
        "deployment_status", "discussion", "discussion_comment", "github_app_authorization", "installation",
        "installation_repositories", "installation_target", "issue_comment", "issues", "label",
        "marketplace_purchase", "member", "membership", "merge_group", "meta", "milestone", "org_block",
        "organization", "package", "personal_access_token_request", "project", "project_card",
        "project_column", "projects_v2", "projects_v2_item", "pull_request", "pull_request_review",
        "pull_request_review_comment", "pull_request_review_thread", "registry_package", "release",
        "repository", "repository_advisory", "repository_dispatch", "repository_ruleset",
        "repository_vulnerability_alert", "secret_scanning_alert", "secret_scanning_alert_location",
        "security_advisory", "security_and_analysis", "sponsorship", "star", "sub_issues", "team",
        "team_add", "watch", "workflow_job", "workflow_run",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventRecord:
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    organization: str | None
    sender: str | None
    installation_id: int | None
    hook_id: int | None


def _text(obj: Any, key: str) -> str | None:
    if isinstance(obj, Mapping):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


def _integer(obj: Any, key: str) -> int | None:
    if isinstance(obj, Mapping):
        value = obj.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _hook_id(value: str | None, payload: Mapping[str, Any]) -> int | None:
    if value is not None and value.isdigit():
        return int(value)
    return _integer(payload, "hook_id")


def check_shape(event: str, payload: Mapping[str, Any]) -> None:
    """Raise `PayloadMismatch` when the payload cannot be a `event` payload."""
    if event in EVENTS_WITH_ACTION and not isinstance(payload.get("action"), str):
        raise PayloadMismatch(f"a {event!r} payload must have a string 'action'")
    if event == "release":
        release = payload.get("release")
        if not isinstance(release, Mapping) or _integer(release, "id") is None:
            raise PayloadMismatch("a 'release' payload must have a 'release' object with an integer 'id'")


def event_record(
    *, delivery_id: str, event: str, hook_id_header: str | None, payload: Mapping[str, Any]
) -> EventRecord:
    """Extract the indexed fields. Tolerant: a missing or oddly typed field becomes None, never an error."""
    return EventRecord(
        delivery_id=delivery_id,
        event=event,
        action=_text(payload, "action"),
        repository=_text(payload.get("repository"), "full_name"),
        organization=_text(payload.get("organization"), "login"),
        sender=_text(payload.get("sender"), "login"),
        installation_id=_integer(payload.get("installation"), "id"),
        hook_id=_hook_id(hook_id_header, payload),
    )
