"""Tracking releases of repositories by polling GitHub's releases API, as plain decisions: what a polled release
becomes (a synthetic `release` delivery, marked as polled), which releases changed since the last poll, and when
each repository is due. No I/O: the tracker role (`ghingest.app.tracker`) makes the requests.

A polled release enters the same pipeline as a webhook delivery: a `release` delivery whose id is derived from the
release and its content (`poll:<release id>:<digest>`), so polling the same content again is a duplicate by the
ordinary dedupe key, and the release fold keeps one history entry per real change whether the change came by
webhook, by poll or both (`ghingest.core.releases`). Where a change came from is read from its delivery id
(`source_of`): the receiver refuses a webhook whose id is in the poller's namespace (`core.delivery.check_head`;
docs/adr/0019-release-sources.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

POLL_DELIVERY_PREFIX = "poll:"
SOURCE_HEADER = "x-ghingest-source"
POLL_SOURCE = "poll"
WEBHOOK_SOURCE = "webhook"

_REPOSITORY = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]{1,100})")


def source_of(delivery_id: str) -> str:
    """Where a delivery came from: `POLL_SOURCE` for an id in the poller's namespace, else `WEBHOOK_SOURCE`."""
    return POLL_SOURCE if delivery_id.startswith(POLL_DELIVERY_PREFIX) else WEBHOOK_SOURCE


class InvalidRepositoryName(ValueError):
    """Not `OWNER/REPO`."""


def repository_key(text: str) -> str:
    """`OWNER/REPO` as the tracked list keys it (GitHub's names are case-insensitive); raise
    `InvalidRepositoryName` for anything else."""
    text = text.strip().removeprefix("https://github.com/").rstrip("/")
    if not _REPOSITORY.fullmatch(text) or text.endswith((".", "..")) or "/." in text:
        raise InvalidRepositoryName(f"{text[:120]!r} is not a repository: write OWNER/REPO")
    return text.lower()


@dataclass(frozen=True, slots=True)
class TrackedRepository:
    """A repository whose releases are polled, and what its last poll found."""

    key: str  # `repository_key`: owner/repo, lower case
    full_name: str  # as GitHub spells it (as typed until the first poll)
    added_at: float
    added_by: str  # "config" (GHINGEST_TRACK_REPOSITORIES), "cli" (`ghingest track`) or "api"
    repository_id: int | None = None
    etag: str | None = None  # of the last 200 from the releases list: sent as If-None-Match
    known: Mapping[int, str] = field(default_factory=dict)  # release id -> content digest, from the last 200
    last_polled_at: float | None = None
    last_status: int | None = None  # 200, 304, or the error's status (0: no answer)
    last_changed_at: float | None = None  # the last poll that found a new or changed release
    last_error: str | None = None
    next_poll_at: float = 0.0
    polls: int = 0
    not_modified: int = 0  # polls answered 304 (no rate-limit cost)
