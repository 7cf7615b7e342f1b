"""Operations an operator starts (the CLI, the dashboard, the API): reprocess recorded deliveries, replay forwards.

Each is a few port calls, the same on every backend.
"""

from __future__ import annotations

from ghingest.ports.backend import Backend
from ghingest.ports.forwarding import ReplaySelection
from ghingest.ports.reads import ReprocessSelection

PAGE = 500


async def reprocess(backend: Backend, selection: ReprocessSelection, *, page: int = PAGE) -> int:
    """Put the selected recorded deliveries back to be processed again (by any worker); return how many."""
    total = 0
    after: str | None = None
    while True:
        found = await backend.reads.deliveries_to_reprocess(selection, after=after, limit=page)
        total += await backend.inbox.requeue(found.items)
        if found.next_cursor is None:
            return total
        after = found.next_cursor


async def replay(backend: Backend, selection: ReplaySelection, *, dry_run: bool = False, chunk: int = PAGE) -> int:
    """Create a replay job per selected (delivery, destination); return how many (only count them when dry)."""
    targets = await backend.forward_log.replay_targets(selection)
    if dry_run:
        return len(targets)
    created = 0
    for start in range(0, len(targets), chunk):
        created += await backend.forwards.enqueue_replays(targets[start : start + chunk])
    return created
