"""Which dashboard sessions were signed out: the database's table (`SessionRevocations`), read through a small cache.

A sign-out made by this process is refused here at once. One made by another process (or before a restart) is
read from the database: one primary-key look-up per session id, whose "not revoked" answer is reused for `ttl`
seconds (`GHINGEST_SESSION_REVOCATION_CACHE`, default 1). So another process's sign-out is honoured here within
`ttl` seconds of its commit, and a busy page costs one indexed read per session per `ttl`, not one per request.
A "revoked" answer is final (a revocation outlives its cookie). At most `max_entries` answers are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ghingest.core.time import now as wall_clock
from ghingest.ports import SessionRevocations


class RevocationCache:
    def __init__(
        self,
        store: SessionRevocations | None,
        *,
        ttl: float = 1.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._local: dict[str, float] = {}  # session id -> until (epoch seconds): signed out by this process
        self._answers: OrderedDict[str, tuple[float, bool]] = OrderedDict()  # session id -> (asked at, revoked)

    async def revoke(self, session_id: str, until: float) -> None:
        """Refuse `session_id` here at once, and everywhere once the database has it (raises when it cannot)."""
        now = wall_clock()
        self._local = {sid: end for sid, end in self._local.items() if end > now}
        self._local[session_id] = until
        self._answers.pop(session_id, None)
        if self._store is not None:
            await self._store.revoke(session_id, until)

    async def is_revoked(self, session_id: str) -> bool:
        if session_id in self._local:
            return True
        if self._store is None:
            return False
        answer = self._answers.get(session_id)
        now = self._clock()
        if answer is not None and (answer[1] or now - answer[0] < self._ttl):
            self._answers.move_to_end(session_id)
            return answer[1]
        revoked = await self._store.is_revoked(session_id)
        self._answers[session_id] = (now, revoked)
        self._answers.move_to_end(session_id)
        while len(self._answers) > self._max_entries:
            self._answers.popitem(last=False)
        return revoked
