"""What ghingest keeps of its own conversations with GitHub's REST API: the gaps that reconciliation found and the
redeliveries it requested (per hook), each hook's last run, and the repositories whose releases are polled.

Shared by every process on the store and kept across restarts, so that a redelivery is never requested twice in a
loop however many reconcilers run, and a poll's ETag survives a restart (an unchanged poll costs no rate limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ghingest.core.pagination import Page
from ghingest.core.reconcile import Gap, GapState, HookScan
from ghingest.core.tracking import TrackedRepository


class GitHubSyncState(Protocol):
    # --- reconciliation ---------------------------------------------------------------------------------------
    async def gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> Mapping[str, Gap]:
        """The saved gaps of `hook` among these delivery ids (one indexed read per page of deliveries)."""
        ...

    async def save_gaps(self, gaps: Sequence[Gap]) -> None:
        """Insert or replace each gap, keyed by (hook, delivery id); durable when it returns."""
        ...

    async def open_gaps(self, hook: str) -> Sequence[Gap]:
        """The gaps of `hook` in `OPEN_STATES` (missing or requested), oldest `delivered_at` first."""
        ...

    async def list_gaps(
        self,
        *,
        states: frozenset[GapState] | None = None,
        hook: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Gap]:
        """Gaps, newest `delivered_at` first (ties by hook, delivery id); keyset pages (`core.pagination`)."""
        ...

    async def gap_counts(self) -> Mapping[GapState, int]:
        """How many gaps are in each state (every state present, 0 when none)."""
        ...

    async def save_scan(self, scan: HookScan) -> None: ...

    async def get_scan(self, hook: str) -> HookScan | None: ...

    async def list_scans(self) -> Sequence[HookScan]:
        """Every hook's last run, by hook."""
        ...

    # --- release tracking -------------------------------------------------------------------------------------
    async def save_tracked(self, repository: TrackedRepository) -> None:
        """Insert or replace, keyed by `repository.key`."""
        ...

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        """Insert unless its key is tracked already (then leave it as it is); True when inserted."""
        ...

    async def get_tracked(self, key: str) -> TrackedRepository | None: ...

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        """Every tracked repository, by key."""
        ...

    async def remove_tracked(self, key: str) -> bool:
        """Stop tracking; True when it was tracked."""
        ...
