"""GitHub's webhooks as its REST API describes them: which hook (a repository's, an organization's, a GitHub App's)
and the deliveries GitHub lists for it. Plain values parsed from configuration text and API JSON; no I/O.

GitHub keeps each hook's deliveries for a few days (3 on github.com, 7 on GitHub Enterprise Server) and lists them
newest first: `GET /repos/{owner}/{repo}/hooks/{hook_id}/deliveries`, `GET /orgs/{org}/hooks/{hook_id}/deliveries`
or `GET /app/hook/deliveries`, each item one attempt (a redelivery is an item of its own, with the same `guid`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ghingest.core.int64 import is_int64
from ghingest.core.time import parse_iso


class HookKind(StrEnum):
    REPOSITORY = "repo"
    ORGANIZATION = "org"
    APP = "app"


_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})"
_REPO_HOOK = re.compile(rf"repo:(?P<owner>{_NAME})/(?P<repo>{_NAME}):(?P<hook>[0-9]{{1,19}})")
_ORG_HOOK = re.compile(rf"org:(?P<org>{_NAME}):(?P<hook>[0-9]{{1,19}})")
_APP_HOOK = re.compile(r"app(?::(?P<hook>[0-9]{1,19}))?")


class InvalidHookRef(ValueError):
    """A hook named in the configuration that is not `repo:OWNER/REPO:HOOK_ID`, `org:ORG:HOOK_ID` or `app[:HOOK_ID]`."""


@dataclass(frozen=True, slots=True)
class HookRef:
    """One hook whose deliveries ghingest reconciles.

    `hook_id` is the id GitHub sends as `X-GitHub-Hook-ID`: required for repository and organization hooks (it is
    in their API paths); for the App's hook it is optional, and without it a delivery counts as received whatever
    hook id it came with (GitHub's API does not tell an App its hook's id; any delivery's `X-GitHub-Hook-ID` does).
    """

    kind: HookKind
    hook_id: int | None = None
    owner: str | None = None  # repo
    repo: str | None = None  # repo
    org: str | None = None  # org

    @classmethod
    def parse(cls, text: str) -> HookRef:
        text = text.strip()
        if m := _REPO_HOOK.fullmatch(text):
            return cls(HookKind.REPOSITORY, int(m["hook"]), owner=m["owner"], repo=m["repo"])
        if m := _ORG_HOOK.fullmatch(text):
            return cls(HookKind.ORGANIZATION, int(m["hook"]), org=m["org"])
        if m := _APP_HOOK.fullmatch(text):
            return cls(HookKind.APP, int(m["hook"]) if m["hook"] else None)
        raise InvalidHookRef(
            f"{text[:120]!r} is not a hook: write repo:OWNER/REPO:HOOK_ID, org:ORG:HOOK_ID or app[:HOOK_ID]"
        )

    @property
    def key(self) -> str:
        """The hook's name in the store, the API, metrics and logs (the text `parse` reads)."""
        if self.kind is HookKind.REPOSITORY:
            return f"repo:{self.owner}/{self.repo}:{self.hook_id}"
        if self.kind is HookKind.ORGANIZATION:
            return f"org:{self.org}:{self.hook_id}"
        return "app" if self.hook_id is None else f"app:{self.hook_id}"

    @property
    def deliveries_path(self) -> str:
        """The REST path that lists this hook's deliveries (`…/{delivery_id}/attempts` below it redelivers one)."""
        if self.kind is HookKind.REPOSITORY:
            return f"/repos/{self.owner}/{self.repo}/hooks/{self.hook_id}/deliveries"
        if self.kind is HookKind.ORGANIZATION:
            return f"/orgs/{self.org}/hooks/{self.hook_id}/deliveries"
        return "/app/hook/deliveries"

    def redelivery_path(self, github_delivery_id: int) -> str:
        return f"{self.deliveries_path}/{github_delivery_id}/attempts"

    def delivered_by(self, hook_ids: frozenset[str]) -> bool:
        """Whether a delivery id that ghingest recorded from these hook ids (`''`: a request that named none) counts
        as this hook's (docs/adr/0010-dedupe-key.md: "do we have hook B's delivery X" is judged per hook)."""
        if self.hook_id is None:
            return bool(hook_ids)
        return str(self.hook_id) in hook_ids


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """One item of a hook's deliveries list: one attempt of GitHub's to deliver one event to this hook."""

    id: int  # GitHub's id of this attempt (what `…/deliveries/{id}/attempts` redelivers)
    guid: str  # X-GitHub-Delivery: the same for every hook, and for every redelivery, of one event
    delivered_at: float  # epoch seconds
    redelivery: bool
    status: str  # GitHub's description of the outcome ("OK", "Invalid HTTP Response: 503", "timed out", …)
    status_code: int  # the HTTP status ghingest answered; 0 when GitHub got none (timed out, refused)
    event: str
    action: str | None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300

    @classmethod
    def from_api(cls, item: Any) -> HookDelivery | None:
        """Parse a list item; None for an item that is not shaped as GitHub documents (skipped, never fatal)."""
        if not isinstance(item, Mapping):
            return None
        ident, guid, when = item.get("id"), item.get("guid"), item.get("delivered_at")
        if not isinstance(ident, int) or not is_int64(ident) or not isinstance(guid, str) or not 0 < len(guid) <= 128:
            return None
        delivered_at = epoch_of(when)
        if delivered_at is None:
            return None
        code = item.get("status_code")
        action = item.get("action")
        event = item.get("event")
        status = item.get("status")
        return cls(
            id=ident,
            guid=guid,
            delivered_at=delivered_at,
            redelivery=item.get("redelivery") is True,
            status=status[:200] if isinstance(status, str) else "",
            status_code=code if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 1000 else 0,
            event=event[:64] if isinstance(event, str) else "",
            action=action[:64] if isinstance(action, str) else None,
        )


def epoch_of(value: Any) -> float | None:
    """A time as GitHub's API writes it (`2019-06-03T00:57:16Z`), as epoch seconds; None when it is not one."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None
