"""The SessionRevocations contract: a revoked session id stays revoked until its `until` (on the clock), and
revocations that ran out stop counting (and are purged: each adapter's own tests check that it keeps none)."""

from __future__ import annotations

from typing import Any

import pytest

from ghingest.ports import ManualClock

pytestmark = pytest.mark.needs("sessions")


async def test_a_revoked_session_is_revoked_and_others_are_not(backend: Any, clock: ManualClock) -> None:
    await backend.sessions.revoke("sid-1", clock.now() + 3600)
    assert await backend.sessions.is_revoked("sid-1") is True
    assert await backend.sessions.is_revoked("sid-2") is False


async def test_revoking_twice_keeps_the_later_end(backend: Any, clock: ManualClock) -> None:
    await backend.sessions.revoke("sid-1", clock.now() + 3600)
    await backend.sessions.revoke("sid-1", clock.now() - 1)
    assert await backend.sessions.is_revoked("sid-1") is True


@pytest.mark.needs("manual_clock")
async def test_a_revocation_ends_at_its_until(backend: Any, clock: ManualClock) -> None:
    await backend.sessions.revoke("sid-1", clock.now() + 60)
    clock.advance(59)
    assert await backend.sessions.is_revoked("sid-1") is True
    clock.advance(1)
    assert await backend.sessions.is_revoked("sid-1") is False


@pytest.mark.needs("manual_clock")
async def test_revocations_that_ran_out_are_purged_and_can_be_made_again(backend: Any, clock: ManualClock) -> None:
    await backend.sessions.revoke("old", clock.now() + 10)
    await backend.sessions.revoke("past", clock.now() - 1)
    assert await backend.sessions.is_revoked("past") is False
    clock.advance(20)
    await backend.sessions.revoke("new", clock.now() + 3600)  # purges "old" and "past"
    assert (await backend.sessions.is_revoked("old"), await backend.sessions.is_revoked("new")) == (False, True)
    await backend.sessions.revoke("old", clock.now() + 60)
    assert await backend.sessions.is_revoked("old") is True
