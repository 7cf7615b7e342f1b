"""Signed-out dashboard sessions in memory: session id -> until, on the injected clock. (Shared by every role of
the process; nothing persists, so a restart forgets them, as it forgets everything else.)"""

from __future__ import annotations

from ghingest.adapters.memory.tables import MemoryDatabase


class MemorySessionRevocations:
    def __init__(self, database: MemoryDatabase) -> None:
        self._db = database

    async def revoke(self, session_id: str, until: float) -> None:
        with self._db.transaction() as db:
            now = db.now()
            for expired in [sid for sid, end in db.revocations.items() if end <= now]:
                del db.revocations[expired]
            db.revocations[session_id] = max(until, db.revocations.get(session_id, until))

    async def is_revoked(self, session_id: str) -> bool:
        with self._db.transaction() as db:
            until = db.revocations.get(session_id)
            return until is not None and until > db.now()

    def __len__(self) -> int:
        """How many revocations are kept (purged ones are not): for the adapter's own tests."""
        with self._db.lock:
            return len(self._db.revocations)
