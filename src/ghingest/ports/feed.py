"""What changed in the store, in commit order, so that live views follow it and catch up after a reconnect.

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
    kind: str  # "event" | "release"
    ref: str  # delivery id or release id


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
