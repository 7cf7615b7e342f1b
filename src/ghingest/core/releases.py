"""Release records: extract a `ReleaseChange` from a `release` delivery and fold changes into one record.

The fold is a join over a total order, so the record is the same whatever order the changes are applied in,
and applying a change twice changes nothing (docs/adr/0003-release-fold.md):

- **state** is the highest-ranked state any change implies: draft < published < unpublished < deleted.
  A late `created` never turns a published release back into a draft; `deleted` is final.
- **content** (tag, name, notes, flags, …) comes from the change with the greatest `ChangeOrder`: the payload's
  own newest timestamp (`published_at`, else `created_at`), then the order GitHub's deliveries were received in.
- **history** holds one entry per delivery id, ordered by `ChangeOrder`, except a polled change that a webhook
  change *covers*: a change of the poller (`core.tracking`) whose content equals that of a webhook change of the
  release saw nothing the webhook did not say, so it is no entry and decides neither state nor content. The
  history is every webhook change and every poll change no webhook change covers: a function of the set of
  changes, so the fold stays order-free (docs/adr/0019-release-sources.md).

`fold` joins one history entry into a record; which changes are history (`covered`, `record_change`) needs the
release's changes themselves, since a record's history keeps no content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from ghingest.core.sources import POLL_SOURCE, WEBHOOK_SOURCE, source_of


class ReleaseState(StrEnum):
    """Where a release stands on GitHub, as its newest recorded change says."""

    DRAFT = "draft"
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"
    DELETED = "deleted"


STATE_RANK: Mapping[ReleaseState, int] = {
    ReleaseState.DRAFT: 0,
    ReleaseState.PUBLISHED: 1,
    ReleaseState.UNPUBLISHED: 2,
    ReleaseState.DELETED: 3,
}

# What each action says about the release's state; `None` means "as the payload's draft flag says".
ACTION_STATES: Mapping[str, ReleaseState | None] = {
    "created": None,
    "edited": None,
    "published": ReleaseState.PUBLISHED,
    "released": ReleaseState.PUBLISHED,
    "prereleased": ReleaseState.PUBLISHED,
    "unpublished": ReleaseState.UNPUBLISHED,
    "deleted": ReleaseState.DELETED,
}


@dataclass(frozen=True, slots=True, order=True)
class ChangeOrder:
    """How new a change's information is: the payload's timestamp first, the receipt order second."""

    timestamp: str
    seq: int


@dataclass(frozen=True, slots=True)
class ReleaseContent:
    repository: str | None
    tag: str | None
    name: str | None
    author_login: str | None
    author_avatar_url: str | None
    draft: bool
    prerelease: bool
    created_at: str | None
    published_at: str | None
    html_url: str | None
    body: str | None


@dataclass(frozen=True, slots=True)
class ReleaseChange:
    release_id: int
    delivery_id: str
    action: str
    order: ChangeOrder
    received_at: float
    content: ReleaseContent

    @property
    def implied_state(self) -> ReleaseState:
        state = ACTION_STATES.get(self.action)
        if state is not None:
            return state
        return ReleaseState.DRAFT if self.content.draft else ReleaseState.PUBLISHED

    @property
    def source(self) -> str:
        """`poll` or `webhook`, from the delivery id (`core.sources.source_of`)."""
        return source_of(self.delivery_id)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    delivery_id: str
    action: str
    order: ChangeOrder
    received_at: float

    @property
    def source(self) -> str:
        return source_of(self.delivery_id)


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    release_id: int
    state: ReleaseState
    content: ReleaseContent
    content_order: ChangeOrder
    history: tuple[HistoryEntry, ...]

    def has_applied(self, delivery_id: str) -> bool:
        return any(entry.delivery_id == delivery_id for entry in self.history)


def _text(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    return value if isinstance(value, str) else None


def release_change(*, delivery_id: str, seq: int, received_at: float, payload: Mapping[str, Any]) -> ReleaseChange:
    """The change a `release` payload carries. The payload's shape was checked by `events.check_shape`."""
    release = payload["release"]
    author = release.get("author")
    repository = payload.get("repository")
    created_at = _text(release, "created_at")
    published_at = _text(release, "published_at")
    content = ReleaseContent(
        repository=_text(repository, "full_name"),
        tag=_text(release, "tag_name"),
        name=_text(release, "name"),
        author_login=_text(author, "login"),
        author_avatar_url=_text(author, "avatar_url"),
        draft=release.get("draft") is True,
        prerelease=release.get("prerelease") is True,
        created_at=created_at,
        published_at=published_at,
        html_url=_text(release, "html_url"),
        body=_text(release, "body"),
    )
    timestamp = max(t for t in (created_at, published_at, "") if t is not None)
    return ReleaseChange(
        release_id=int(release["id"]),
        delivery_id=delivery_id,
        action=str(payload.get("action") or ""),
        order=ChangeOrder(timestamp=timestamp, seq=seq),
        received_at=received_at,
        content=content,
    )


def covers(change: ReleaseChange, other: ReleaseChange) -> bool:
    """Whether `change`, a webhook change, covers `other`: a poll change of the same release with equal content."""
    return (
        change.source == WEBHOOK_SOURCE
        and other.source == POLL_SOURCE
        and change.release_id == other.release_id
        and change.content == other.content
    )


def covered(changes: Iterable[ReleaseChange]) -> set[str]:
    """The delivery ids of the poll changes among `changes` that a webhook change among them covers."""
    changes = list(changes)
    polls = [c for c in changes if c.source == POLL_SOURCE]
    if not polls:  # the usual case, which hashes no content
        return set()
    webhooks = {(c.release_id, c.content) for c in changes if c.source == WEBHOOK_SOURCE}
    return {c.delivery_id for c in polls if (c.release_id, c.content) in webhooks}


def history_changes(changes: Iterable[ReleaseChange]) -> list[ReleaseChange]:
    """The changes that are history entries (every one but the covered poll changes), by `ChangeOrder`."""
    changes = list(changes)
    hidden = covered(changes)
    return sorted((c for c in changes if c.delivery_id not in hidden), key=lambda c: (c.order, c.delivery_id))


def fold(record: ReleaseRecord | None, change: ReleaseChange) -> ReleaseRecord:
    """Join one history entry, `change`, into `record` (None for a release not seen before). Returns `record`
    itself for a duplicate. Whether a change is an entry at all, and which entries a webhook change takes out of
    the history, is `record_change`'s to decide."""
    entry = HistoryEntry(change.delivery_id, change.action, change.order, change.received_at)
    if record is None:
        return ReleaseRecord(
            release_id=change.release_id,
            state=change.implied_state,
            content=change.content,
            content_order=change.order,
            history=(entry,),
        )
    if record.release_id != change.release_id:
        raise ValueError(f"change for release {change.release_id} applied to release {record.release_id}")
    if record.has_applied(change.delivery_id):
        return record
    implied = change.implied_state
    state = implied if STATE_RANK[implied] > STATE_RANK[record.state] else record.state
    newer = change.order > record.content_order
    return replace(
        record,
        state=state,
        content=change.content if newer else record.content,
        content_order=change.order if newer else record.content_order,
        history=tuple(sorted((*record.history, entry), key=lambda e: (e.order, e.delivery_id))),
    )


def rebuild(changes: Iterable[ReleaseChange]) -> ReleaseRecord:
    """The record that a release's changes fold into: their history entries (`history_changes`) folded (used when
    a stored change is replaced or taken out of the history)."""
    record: ReleaseRecord | None = None
    for change in history_changes(changes):
        record = fold(record, change)
    if record is None:
        raise ValueError("a release record needs at least one change")
    return record


@dataclass(frozen=True, slots=True)
class Recorded:
    """A release after `record_change`: its record, the changes kept as its history, and what coverage did."""

    record: ReleaseRecord
    changes: Mapping[str, ReleaseChange]  # the history's changes, by delivery id
    dropped: frozenset[str]  # poll changes kept before that the recorded webhook change covers
    covered: bool  # the recorded change is a poll change a kept webhook change covers: it is not kept


def record_change(
    record: ReleaseRecord | None, changes: Mapping[str, ReleaseChange], change: ReleaseChange
) -> Recorded:
    """Record `change` in a release whose history is `changes` (by delivery id) folded into `record` (None, and
    no changes, for a release not seen before). A change not seen before that covers nothing folds in O(1); a
    delivery recorded again, or a webhook change that covers kept poll changes, rebuilds the record from what is
    kept. A covered poll change leaves the record as it is (unless it was kept before: then it is taken out)."""
    others = {d: c for d, c in changes.items() if d != change.delivery_id}
    again = change.delivery_id in changes
    if any(covers(c, change) for c in others.values()):
        kept_before = record if record is not None and not again else rebuild(others.values())
        return Recorded(kept_before, others, frozenset(), covered=True)
    dropped = frozenset(d for d, c in others.items() if covers(change, c))
    kept = {d: c for d, c in others.items() if d not in dropped}
    kept[change.delivery_id] = change
    if record is None or again or dropped:
        return Recorded(rebuild(kept.values()), kept, dropped, covered=False)
    return Recorded(fold(record, change), kept, dropped, covered=False)


def sort_at(content: ReleaseContent) -> str:
    """A release's time for "newest first", for filters by time and for keyset cursors: published, else created
    (ISO-8601 text as GitHub sends it; '' when it has neither, which sorts lowest)."""
    return content.published_at or content.created_at or ""
