"""What ghingest keeps of its conversations with GitHub's API, in memory: gaps by (hook, delivery id), each hook's
last run, tracked repositories by key, leases by name (holder and end, on the injected clock). Gaps are scanned and
sorted per call (the SQL backends walk an index in the same order); a tracked repository's `known` is copied in and
out, so that no caller shares the stored mapping. (Nothing is shared beyond the process: its leases only decide
between the roles of one process.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ghingest.adapters.memory.tables import MemoryDatabase
from ghingest.core.pagination import Page, page_of, page_size
from ghingest.core.reconcile import OPEN_STATES, Gap, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.github_sync import PURGE_LIMIT, gap_after, gap_cursor, gap_order


class MemoryGitHubSyncState:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    # --- reconciliation -------------------------------------------------------------------------------------------

    async def gaps_for(self, hook: str, delivery_ids: Sequence[str]) -> Mapping[str, Gap]:
        with self._db.transaction() as db:
            found = (db.gaps.get((hook, delivery_id)) for delivery_id in delivery_ids)
            return {gap.delivery_id: gap for gap in found if gap is not None}

    async def save_gaps(self, gaps: Sequence[Gap]) -> None:
        with self._db.transaction() as db:
            for gap in gaps:
                db.gaps[(gap.hook, gap.delivery_id)] = gap

    async def open_gaps(self, hook: str) -> Sequence[Gap]:
        with self._db.transaction() as db:
            found = [gap for (of, _), gap in db.gaps.items() if of == hook and gap.state in OPEN_STATES]
        return sorted(found, key=lambda gap: (gap.delivered_at, gap.delivery_id))

    async def list_gaps(
        self,
        *,
        states: frozenset[GapState] | None = None,
        hook: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Gap]:
        after = gap_after(cursor) if cursor else None
        size = page_size(limit)
        with self._db.transaction() as db:
            found = [
                gap
                for gap in db.gaps.values()
                if (states is None or gap.state in states)
                and hook in (None, gap.hook)
                and (after is None or gap_order(gap) < after)
            ]
        found.sort(key=gap_order, reverse=True)
        return page_of(found[: size + 1], size, gap_cursor)

    async def gap_counts(self) -> Mapping[GapState, int]:
        counts = dict.fromkeys(GapState, 0)
        with self._db.transaction() as db:
            for gap in db.gaps.values():
                counts[gap.state] += 1
        return counts

    async def purge_gaps(self, *, before: float) -> int:
        with self._db.transaction() as db:
            old = [k for k, gap in db.gaps.items() if gap.delivered_at < before and gap.state not in OPEN_STATES]
            for k in old[:PURGE_LIMIT]:
                del db.gaps[k]
        return min(len(old), PURGE_LIMIT)

    async def save_scan(self, scan: HookScan) -> None:
        with self._db.transaction() as db:
            db.scans[scan.hook] = scan

    async def get_scan(self, hook: str) -> HookScan | None:
        with self._db.transaction() as db:
            return db.scans.get(hook)

    async def list_scans(self) -> Sequence[HookScan]:
        with self._db.transaction() as db:
            return [db.scans[hook] for hook in sorted(db.scans)]

    # --- release tracking -------------------------------------------------------------------------------------------

    async def save_tracked(self, repository: TrackedRepository) -> None:
        with self._db.transaction() as db:
            db.tracked[repository.key] = _copy(repository)

    async def add_tracked(self, repository: TrackedRepository) -> bool:
        with self._db.transaction() as db:
            if repository.key in db.tracked:
                return False
            db.tracked[repository.key] = _copy(repository)
            return True

    async def get_tracked(self, key: str) -> TrackedRepository | None:
        with self._db.transaction() as db:
            found = db.tracked.get(key)
        return None if found is None else _copy(found)

    async def list_tracked(self) -> Sequence[TrackedRepository]:
        with self._db.transaction() as db:
            return [_copy(db.tracked[key]) for key in sorted(db.tracked)]

    async def remove_tracked(self, key: str) -> bool:
        with self._db.transaction() as db:
            return db.tracked.pop(key, None) is not None

    # --- leases -----------------------------------------------------------------------------------------------------

    async def hold_lease(self, name: str, holder: str, *, until: float) -> bool:
        with self._db.transaction() as db:
            held = db.leases.get(name)
            if held is not None and held[0] != holder and held[1] > db.now():
                return False
            db.leases[name] = (holder, until)
            return True

    async def release_lease(self, name: str, holder: str) -> None:
        with self._db.transaction() as db:
            held = db.leases.get(name)
            if held is not None and held[0] == holder:
                del db.leases[name]


def _copy(repository: TrackedRepository) -> TrackedRepository:
    return replace(repository, known=dict(repository.known))
