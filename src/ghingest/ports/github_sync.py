"""What ghingest keeps of its own conversations with GitHub's REST API: the gaps that reconciliation found and the
redeliveries it requested (per hook), each hook's last run, and the repositories whose releases are polled.

Shared by every process on the store and kept across restarts, so that a redelivery is never requested twice in a
loop however many reconcilers run, and a poll's ETag survives a restart (an unchanged poll costs no rate limit).
Leases (`hold_lease`) let one process at a time of a deployment run a scheduled role (the reconciliation, the
release tracker); they end on the store's injected clock, so every process must share a clock (NTP) to within
much less than a lease's length.
`gap_order`, `gap_cursor` and `gap_after` are the gap list's order and keyset cursor, one for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ghingest.core.pagination import InvalidCursor, Page, decode_cursor, encode_cursor
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
        """Gaps in `states` (all when None) of `hook` (every hook's when None), newest `delivered_at` first (ties by
        hook, then delivery id, both descending); keyset pages (`core.pagination`: `page_size`, an unreadable
        cursor raises `InvalidCursor`)."""
        ...

    async def gap_counts(self) -> Mapping[GapState, int]:
        """How many gaps are in each state (every state present, 0 when none)."""
        ...

    async def purge_gaps(self, *, before: float) -> int:
        """Delete gaps delivered before `before` (`delivered_at < before`) that are no longer open (not in
        `OPEN_STATES`), at most `PURGE_LIMIT` of them a call, in no promised order; how many were deleted. An open
        gap is never deleted, however old. The reconciler calls it every run (with `now - 30 days`), so that closed
        gaps do not pile up; a backlog larger than `PURGE_LIMIT` goes over the following runs."""
        ...

    async def save_scan(self, scan: HookScan) -> None:
        """Insert or replace the hook's last run, keyed by `scan.hook`; durable when it returns."""
        ...

    async def get_scan(self, hook: str) -> HookScan | None:
        """The hook's last run; None before its first."""
        ...

    async def list_scans(self) -> Sequence[HookScan]:
        """Every hook's last run, by hook."""
        ...

    # --- release tracking -------------------------------------------------------------------------------------
    async def save_tracked(self, repository: TrackedRepository) -> None:
        """Insert or replace, keyed by `repository.key`; durable when it returns."""
        ...

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        """Insert unless its key is tracked already (then leave it as it is); True when inserted."""
        ...

    async def get_tracked(self, key: str) -> TrackedRepository | None:
        """The tracked repository of `key` (`core.tracking.repository_key`); None when it is not tracked."""
        ...

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        """Every tracked repository, by key."""
        ...

    async def remove_tracked(self, key: str) -> bool:
        """Stop tracking; True when it was tracked."""
        ...

    # --- leases -----------------------------------------------------------------------------------------------
    async def hold_lease(self, name: str, holder: str, *, until: float) -> bool:
        """Take the lease `name` for `holder` until `until` (epoch seconds), or renew it: True when `holder` holds
        it now (it was free, had run out by the store's clock (`now` from the injected clock), or was `holder`'s
        own). Atomic: of two holders asking at once, at most one gets True. A holder renews well before `until`
        (say, at a third of the lease's length) and stops the leased work when a renewal is refused."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` holds it (shutdown), so another process takes over at once; nothing when
        another holds it (or nobody does)."""
        ...


PURGE_LIMIT = 1000  # gaps `purge_gaps` deletes at most, per call


def gap_order(gap: Gap) -> tuple[float, str, str]:
    """The key `list_gaps` sorts by, descending."""
    return gap.delivered_at, gap.hook, gap.delivery_id


def gap_cursor(gap: Gap) -> str:
    """The keyset cursor of the page that follows `gap` in `list_gaps`."""
    return encode_cursor(gap_order(gap))


def gap_after(cursor: str) -> tuple[float, str, str]:
    """The key a `list_gaps` cursor names; `InvalidCursor` for one that `gap_cursor` did not make."""
    delivered_at, hook, delivery_id = decode_cursor(cursor, types=(float, str, str))
    if not isinstance(delivered_at, float) or not isinstance(hook, str) or not isinstance(delivery_id, str):
        raise InvalidCursor("cursor is not valid")
    return delivered_at, hook, delivery_id
