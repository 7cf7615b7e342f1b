"""Tracking releases of repositories by polling GitHub's releases API, as plain decisions: what a polled release
becomes (a synthetic `release` delivery, marked as polled), which releases changed since the last poll, and when
each repository is due. No I/O: the tracker role (`ghingest.app.tracker`) makes the requests.

A polled release enters the same pipeline as a webhook delivery: a `release` delivery whose id is derived from the
release and its content (`poll:<release id>:<digest>`), so polling the same content again is a duplicate by the
ordinary dedupe key, and the release fold keeps one history entry per real change whether the change came by
webhook, by poll or both (`ghingest.core.releases`). Where a change came from is read from its delivery id
(`core.sources`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ghingest.core.delivery import ContentKind, IncomingDelivery
from ghingest.core.int64 import is_int64
from ghingest.core.sources import POLL_DELIVERY_PREFIX, POLL_SOURCE, SOURCE_HEADER

_REPOSITORY = re.compile(r"(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<name>[A-Za-z0-9._-]{1,100})")


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


NOT_SIGNED = -1  # `secret_index` of a delivery no webhook secret verified: ghingest made it from a poll
_CONTENT_FIELDS = ("tag_name", "name", "body", "draft", "prerelease", "created_at", "published_at", "html_url")


@dataclass(frozen=True, slots=True)
class PolledChange:
    """A release that a poll found new or changed, as the delivery that carries it into the pipeline."""

    release_id: int
    digest: str
    action: str  # "published" (new), "created" (a new draft), "edited" (changed)
    delivery: IncomingDelivery


def release_digest(repository: str, release: Mapping[str, Any]) -> str:
    """A digest of what the release record takes from a release (`core.releases.ReleaseContent`): equal digests,
    equal content."""
    author = release.get("author")
    fields = [repository, *(release.get(name) for name in _CONTENT_FIELDS)]
    if isinstance(author, Mapping):
        fields += [author.get("login"), author.get("avatar_url")]
    return hashlib.sha256(orjson.dumps(fields)).hexdigest()[:20]


def poll_delivery_id(release_id: int, digest: str) -> str:
    return f"{POLL_DELIVERY_PREFIX}{release_id}:{digest}"


def changed_releases(
    releases: Any, *, repository: Mapping[str, Any], known: Mapping[int, str]
) -> tuple[list[PolledChange], dict[int, str]]:
    """The releases of one poll that are new or changed since `known` (release id -> digest), as deliveries, and
    the digests to keep for the next poll. Items that are not release objects are skipped."""
    full_name = str(repository.get("full_name") or "")
    changes: list[PolledChange] = []
    digests: dict[int, str] = {}
    for release in releases if isinstance(releases, list) else ():
        if not isinstance(release, Mapping):
            continue
        release_id = release.get("id")
        if not isinstance(release_id, int) or not is_int64(release_id) or release_id < 0:
            continue
        digest = release_digest(full_name, release)
        digests[release_id] = digest
        before = known.get(release_id)
        if before == digest:
            continue
        action = "edited" if before is not None else ("created" if release.get("draft") is True else "published")
        changes.append(PolledChange(release_id, digest, action, _delivery(repository, release, action, digest)))
    return changes, digests


def _delivery(repository: Mapping[str, Any], release: Mapping[str, Any], action: str, digest: str) -> IncomingDelivery:
    release_id = int(release["id"])
    payload = {
        "action": action,
        "release": dict(release),
        "repository": dict(repository),
        "sender": release.get("author") if isinstance(release.get("author"), Mapping) else None,
    }
    delivery_id = poll_delivery_id(release_id, digest)
    headers = {
        "x-github-event": "release",
        "x-github-delivery": delivery_id,
        "content-type": "application/json",
        SOURCE_HEADER: POLL_SOURCE,
        "user-agent": "ghingest-release-poller",
    }
    return IncomingDelivery(
        delivery_id=delivery_id,
        event="release",
        hook_id=None,
        content_kind=ContentKind.JSON,
        headers=headers,
        body=orjson.dumps(payload),
        secret_index=NOT_SIGNED,
    )


def first_poll_at(key: str, *, now: float, interval: float) -> float:
    """When a repository is first due: at its own offset within the interval (a stable hash of its key), so that
    a thousand repositories are polled evenly across the interval, not all at once."""
    offset = int.from_bytes(hashlib.blake2s(key.encode(), digest_size=8).digest(), "big") % 1_000_000
    return now + interval * offset / 1_000_000


def next_poll_at(previous_due: float, *, now: float, interval: float) -> float:
    """The next due time: one interval after the last one (keeping the repository's slot), never in the past."""
    due = previous_due + interval
    if due <= now:
        due += interval * ((now - due) // interval + 1)
    return due
