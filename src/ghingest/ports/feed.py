"""What changed in the store, in commit order, so that live views follow it and catch up after a reconnect.

Kinds: `event` (an event recorded: its delivery id), `release` (a release record changed: its id), `forward` (a
forward job of a delivery was created, attempted, replayed or released: the delivery id), each written in the
transaction that made the change (docs/adr/0026-live-forwards-and-shutdown.md).

Cursors are opaque strings: only the feed that made one reads it (a SQLite sequence number, a PostgreSQL
position that a late commit can never fall behind, a stream offset).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Change:
    cursor: str  # resume after this change
    kind: str  # "event" | "release" | "forward"
    ref: str  # delivery id (event, forward) or release id


class ChangeFeed(Protocol):
    async def changes_since(self, cursor: str, *, limit: int = 500) -> Sequence[Change]:
        """Changes after `cursor`, oldest first. Raises `InvalidCursor` for a cursor this feed did not make."""
        ...

    async def latest(self) -> str:
        """The cursor of the newest change (resuming from it gives only what comes next)."""
        ...

    async def wait_for_change(self, after: str, timeout: float) -> None:
        """Return when a change after `after` may exist, or after `timeout` seconds."""
        ...
