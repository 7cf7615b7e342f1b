"""The audit log: who started which operator action, when, from where, on what selection, and what came of it.

Entries are appended once and never changed; every process on the store shares them, and they are kept across
restarts (there is no purge: operator actions are few). `ghingest.app.audit` makes the entries (one helper for the
dashboard, the API and the CLI); the audit page and `GET /api/audit` list them.

The action names are an open set (`ACTIONS` lists those this release records; a newer process may write others,
which an older one lists as they are). A selection and a result are small JSON documents: ids, times, filters and
counts, never a payload, a token or a password.
`audit_cursor` and `audit_after` are the list's keyset cursor, one for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ghingest.core.pagination import DEFAULT_PAGE_SIZE, InvalidCursor, Page, decode_cursor, encode_cursor

REPROCESS = "reprocess"  # recorded deliveries put back to be processed again
REPLAY = "replay"  # forwards made again from a selection (the API's /api/replays, `ghingest replay`)
RETRY = "retry"  # dead letters retried (the dead-letters page)
FORWARD_AGAIN = "forward_again"  # one delivery forwarded again from its page
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"  # never with what was typed as the secret
SIGN_OUT = "sign_out"
ACTIONS: tuple[str, ...] = (REPROCESS, REPLAY, RETRY, FORWARD_AGAIN, SIGN_IN, SIGN_IN_FAILED, SIGN_OUT)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: str  # random, unguessable: the dashboard's feedback after an action names its entry by it
    at: float  # epoch seconds, from the injected clock
    actor: str  # a user's name, "api token <n>", "cli:<user>@<host>"
    client: str | None  # the client's address (after trusted proxies); None for the CLI
    action: str  # one of `ACTIONS`, or another a newer release writes
    selection: Mapping[str, Any] = field(default_factory=dict)  # what the action was asked to act on
    result: Mapping[str, Any] = field(default_factory=dict)  # what came of it: counts, an error
    ok: bool = True


@dataclass(frozen=True, slots=True)
class AuditQuery:
    action: str | None = None
    actor: str | None = None
    since: float | None = None  # at or after
    until: float | None = None  # before
    ok: bool | None = None  # the outcome: True (ok), False (failed), None (both)
    cursor: str | None = None
    limit: int = DEFAULT_PAGE_SIZE


class AuditLog(Protocol):
    async def append(self, entry: AuditEntry) -> None:
        """Keep `entry` (its id is new); durable when it returns."""
        ...

    async def get(self, entry_id: str) -> AuditEntry | None:
        """The entry of `entry_id` (a strongly consistent read: the page after an action reads it at once)."""
        ...

    async def list(self, query: AuditQuery) -> Page[AuditEntry]:
        """Entries matching every filter of `query`, newest `at` first (ties by id, descending); keyset pages
        (`core.pagination`: `page_size`; an unreadable cursor raises `InvalidCursor`)."""
        ...


def audit_order(entry: AuditEntry) -> tuple[float, str]:
    """The key `list` sorts by, descending."""
    return entry.at, entry.id


def audit_cursor(entry: AuditEntry) -> str:
    """The keyset cursor of the page that follows `entry`."""
    return encode_cursor(audit_order(entry))


def audit_after(cursor: str) -> tuple[float, str]:
    """The key a cursor names; `InvalidCursor` for one that `audit_cursor` did not make."""
    at, entry_id = decode_cursor(cursor, types=(float, str))
    if not isinstance(at, float) or not isinstance(entry_id, str):
        raise InvalidCursor("cursor is not valid")
    return at, entry_id


def matches(entry: AuditEntry, query: AuditQuery) -> bool:
    """Whether `entry` passes `query`'s filters (the cursor aside): for backends that filter what they read."""
    return (
        (query.action is None or entry.action == query.action)
        and (query.actor is None or entry.actor == query.actor)
        and (query.since is None or entry.at >= query.since)
        and (query.until is None or entry.at < query.until)
        and (query.ok is None or entry.ok == query.ok)
    )
