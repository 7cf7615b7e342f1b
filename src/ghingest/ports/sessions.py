"""Signed-out dashboard sessions, shared by every process on the store and kept across restarts."""

from __future__ import annotations

from typing import Protocol


class SessionRevocations(Protocol):
    """Session ids that were signed out, shared by every process on the database and kept across restarts."""

    async def revoke(self, session_id: str, until: float) -> None:
        """Refuse `session_id` from now until `until` (epoch seconds: when its cookie expires anyway); purge the
        revocations that have run out. Durable when it returns."""
        ...

    async def is_revoked(self, session_id: str) -> bool:
        """Whether `session_id` was revoked and its revocation has not run out (one indexed read)."""
        ...
