"""The revocation cache: this process's sign-outs at once, another process's within `ttl`, bounded memory."""

from __future__ import annotations

import asyncio

from ghingest.app.revocations import RevocationCache


class FakeStore:
    def __init__(self) -> None:
        self.revoked: dict[str, float] = {}
        self.reads = 0

    async def revoke(self, session_id: str, until: float) -> None:
        self.revoked[session_id] = until

    async def is_revoked(self, session_id: str) -> bool:
        self.reads += 1
        return session_id in self.revoked


class FakeClock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_own_sign_outs_count_at_once_and_are_stored() -> None:
    store = FakeStore()
    cache = RevocationCache(store, ttl=1.0, clock=FakeClock())

    async def scenario() -> bool:
        assert await cache.is_revoked("sid") is False  # cached "not revoked"…
        await cache.revoke("sid", 2e9)
        return await cache.is_revoked("sid")  # …is not trusted after this process's own sign-out

    assert asyncio.run(scenario()) is True
    assert "sid" in store.revoked


def test_another_process_sign_out_is_seen_within_the_ttl_with_one_read_per_ttl() -> None:
    store, clock = FakeStore(), FakeClock()
    cache = RevocationCache(store, ttl=1.0, clock=clock)

    async def scenario() -> list[bool]:
        seen = [await cache.is_revoked("sid") for _ in range(50)]
        store.revoked["sid"] = 2e9  # signed out elsewhere
        seen.append(await cache.is_revoked("sid"))  # still cached
        clock.now += 1.0
        seen.append(await cache.is_revoked("sid"))
        clock.now += 100
        seen.append(await cache.is_revoked("sid"))  # a "revoked" answer is final: no read
        return seen

    seen = asyncio.run(scenario())
    assert seen == [False] * 51 + [True, True]
    assert store.reads == 2


def test_answers_kept_are_bounded() -> None:
    store = FakeStore()
    cache = RevocationCache(store, ttl=60, max_entries=10, clock=FakeClock())

    async def scenario() -> None:
        for n in range(100):
            await cache.is_revoked(f"sid-{n}")

    asyncio.run(scenario())
    assert len(cache._answers) == 10
