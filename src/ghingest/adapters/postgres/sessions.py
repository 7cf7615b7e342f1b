"""Revoked dashboard sessions in PostgreSQL: shared by every process on the database; ends on the injected clock."""

from __future__ import annotations

from ghingest.adapters.postgres.connection import PostgresResources

_PURGE = "DELETE FROM session_revocations WHERE until <= %s"
_REVOKE = (
    "INSERT INTO session_revocations (session_id, revoked_at, until) VALUES (%s, %s, %s)"
    " ON CONFLICT (session_id) DO UPDATE SET until = greatest(session_revocations.until, excluded.until)"
)
_IS_REVOKED = "SELECT 1 FROM session_revocations WHERE session_id = %s AND until > %s"  # primary-key look-up


class PostgresSessionRevocations:
    def __init__(self, resources: PostgresResources) -> None:
        self._db = resources

    async def revoke(self, session_id: str, until: float) -> None:
        now = self._db.clock.now()
        async with self._db.transaction() as conn:
            await conn.execute(_PURGE, (now,))  # uses ix_session_revocations_until; sign-outs are rare, so is this
            await conn.execute(_REVOKE, (session_id, now, until))

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._db.scalar(_IS_REVOKED, (session_id, self._db.clock.now())) == 1)
