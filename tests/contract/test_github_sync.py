"""The GitHubSyncState contract: reconciliation's gaps (keyed by hook and delivery id, read by id, open ones oldest
first, listed newest first in keyset pages, counted per state, closed old ones purged), each hook's last run, the
tracked repositories, and leases (one holder at a time, until they run out on the injected clock or are given up),
all kept across a reopening of the backend.

Leases follow the test's `clock` on every backend (no broker's timer decides them), so these tests move it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import pytest

from ghingest.core.pagination import InvalidCursor, encode_cursor
from ghingest.core.reconcile import OPEN_STATES, Gap, GapKind, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports import ManualClock
from ghingest.ports.github_sync import PURGE_LIMIT

pytestmark = pytest.mark.needs("github")

T0 = 1_700_000_000.0
HOOKS = ("org:acme:7", "repo:Acme/API:12", "app")  # mixed case: every backend compares them as bytes


def gap(hook: str, delivery_id: str, at: float, state: GapState = GapState.MISSING, **fields: Any) -> Gap:
    defaults: dict[str, Any] = {
        "github_id": 9_000_000_000 + int(at - T0),  # beyond 32 bits
        "event": "push",
        "action": None,
        "status_code": 0,
        "github_status": "timed out",
        "kind": GapKind.LOST,
        "found_at": at + 300.0,
        "updated_at": at + 300.0,
    }
    return Gap(hook=hook, delivery_id=delivery_id, delivered_at=at, state=state, **(defaults | fields))


def order(g: Gap) -> tuple[float, str, str]:
    return g.delivered_at, g.hook, g.delivery_id


async def all_gaps(backend: Any, limit: int, **filters: Any) -> list[Gap]:
    """Every page of `list_gaps`, checking that each page but the last is full."""
    found: list[Gap] = []
    cursor = None
    while True:
        page = await backend.github.list_gaps(cursor=cursor, limit=limit, **filters)
        found += page.items
        if page.next_cursor is None:
            return found
        assert len(page.items) == limit
        cursor = page.next_cursor


# --- gaps -------------------------------------------------------------------------------------------------------


async def test_gaps_are_saved_and_replaced_by_hook_and_delivery_id(backend: Any) -> None:
    full = gap(
        HOOKS[1], "d-1", T0 + 0.25, GapState.REQUESTED, action="published", event="release", status_code=503,
        github_status="Invalid HTTP Response: 503", kind=GapKind.HOOK, requests=2, last_requested_at=T0 + 900.5,
        error="HTTP 502 from GitHub",
    )  # fmt: skip
    plain = gap(HOOKS[1], "d-2", T0 + 10)
    other_hook = gap(HOOKS[0], "d-1", T0 + 20)
    await backend.github.save_gaps([full, plain, other_hook])
    assert await backend.github.gaps_for(HOOKS[1], ["d-1", "d-2", "d-3"]) == {"d-1": full, "d-2": plain}
    assert await backend.github.gaps_for(HOOKS[0], ["d-1", "d-2"]) == {"d-1": other_hook}
    assert await backend.github.gaps_for(HOOKS[2], ["d-1"]) == {}
    assert await backend.github.gaps_for(HOOKS[1], []) == {}

    arrived = replace(full, state=GapState.ARRIVED, arrived_at=T0 + 1000, updated_at=T0 + 1000, error=None)
    twice = replace(plain, state=GapState.REQUESTED, requests=1)
    await backend.github.save_gaps([arrived, replace(twice, requests=3), twice])  # the last of each wins
    assert await backend.github.gaps_for(HOOKS[1], ["d-1", "d-2"]) == {"d-1": arrived, "d-2": twice}
    await backend.github.save_gaps([])
    assert len(await all_gaps(backend, 50)) == 3


async def test_gaps_for_reads_a_page_of_deliveries_at_once(backend: Any) -> None:
    gaps = [gap(HOOKS[0], f"d-{n:03d}", T0 + n) for n in range(0, 240, 2)]
    await backend.github.save_gaps(gaps)
    asked = [f"d-{n:03d}" for n in range(240)]  # every other one is a gap
    assert await backend.github.gaps_for(HOOKS[0], asked) == {g.delivery_id: g for g in gaps}


async def test_open_gaps_are_a_hooks_missing_and_requested_ones_oldest_first(backend: Any) -> None:
    hook = HOOKS[1]
    closed = [s for s in GapState if s not in (GapState.MISSING, GapState.REQUESTED)]
    gaps = [
        gap(hook, "late", T0 + 50, GapState.REQUESTED, requests=1, last_requested_at=T0 + 60),
        gap(hook, "early", T0 + 10),
        gap(hook, "tie-b", T0 + 30),
        gap(hook, "tie-a", T0 + 30, GapState.REQUESTED, requests=1),
        *(gap(hook, f"closed-{s.value}", T0 + 20, s) for s in closed),
        gap(HOOKS[0], "other-hook", T0 + 5),
    ]  # fmt: skip
    await backend.github.save_gaps(gaps)
    opened = await backend.github.open_gaps(hook)
    assert [g.delivery_id for g in opened] == ["early", "tie-a", "tie-b", "late"]
    assert opened[-1] == gaps[0]
    assert [g.delivery_id for g in await backend.github.open_gaps(HOOKS[0])] == ["other-hook"]
    assert await backend.github.open_gaps(HOOKS[2]) == []
    await backend.github.save_gaps([replace(gaps[1], state=GapState.ARRIVED, arrived_at=T0 + 99)])
    assert [g.delivery_id for g in await backend.github.open_gaps(hook)] == ["tie-a", "tie-b", "late"]


def _many_gaps() -> list[Gap]:
    """29 gaps over three hooks and every state, with ties in time (broken by hook, then by delivery id)."""
    states = list(GapState)
    gaps = []
    for n in range(27):
        at = T0 + (n // 3) * 60.0 + (0.5 if n % 5 == 0 else 0.0)
        gaps.append(gap(HOOKS[n % 3], f"g-{n % 4}-{n:02d}", at, states[n % len(states)]))
    return [*gaps, gap(HOOKS[0], "g-0-03a", T0 + 60.0, GapState.ARRIVED), gap(HOOKS[0], "g-0-03", T0 + 60.0)]


async def test_gaps_are_listed_newest_first_in_keyset_pages(backend: Any) -> None:
    gaps = _many_gaps()
    await backend.github.save_gaps(gaps)
    newest_first = sorted(gaps, key=order, reverse=True)
    for limit in (1, 4, 29, 50):
        assert await all_gaps(backend, limit) == newest_first
    first = await backend.github.list_gaps(limit=5)
    assert first.items == newest_first[:5]
    assert first.next_cursor is not None
    assert (await backend.github.list_gaps(cursor=first.next_cursor, limit=5)).items == newest_first[5:10]
    page = await backend.github.list_gaps(limit=0)  # at least one (core.pagination.page_size)
    assert page.items == newest_first[:1]


async def test_gaps_are_listed_by_state_and_by_hook(backend: Any) -> None:
    gaps = _many_gaps()
    await backend.github.save_gaps(gaps)
    newest_first = sorted(gaps, key=order, reverse=True)
    still = frozenset({GapState.MISSING, GapState.GAVE_UP, GapState.REFUSED})
    for states, hook in (
        (frozenset({GapState.ARRIVED}), None),
        (still, None),
        (None, HOOKS[1]),
        (None, "org:nobody:1"),
        (still, HOOKS[0]),
        (frozenset(GapState), HOOKS[2]),
    ):
        wanted = [g for g in newest_first if (states is None or g.state in states) and hook in (None, g.hook)]
        assert await all_gaps(backend, 2, states=states, hook=hook) == wanted, (states, hook)
    assert (await backend.github.list_gaps(states=frozenset())).items == []


async def test_a_cursor_continues_the_list_it_came_from_whatever_was_saved_since(backend: Any) -> None:
    gaps = _many_gaps()
    await backend.github.save_gaps(gaps[:20])
    first = await backend.github.list_gaps(limit=6)
    await backend.github.save_gaps(gaps[20:])  # newer and older ones
    rest = await all_gaps_from(backend, first.next_cursor, 6)
    newest_first = sorted(gaps, key=order, reverse=True)
    assert rest == [g for g in newest_first if order(g) < order(first.items[-1])]


async def all_gaps_from(backend: Any, cursor: str | None, limit: int) -> list[Gap]:
    found: list[Gap] = []
    while cursor is not None:
        page = await backend.github.list_gaps(cursor=cursor, limit=limit)
        found += page.items
        cursor = page.next_cursor
    return found


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", encode_cursor([1, "h", "d"]), encode_cursor([1.5, "h"]), encode_cursor([None, "h", "d"])],
)
async def test_a_cursor_this_list_did_not_make_is_invalid(backend: Any, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await backend.github.list_gaps(cursor=cursor)


async def test_gap_counts_name_every_state(backend: Any) -> None:
    assert await backend.github.gap_counts() == dict.fromkeys(GapState, 0)
    gaps = _many_gaps()
    await backend.github.save_gaps(gaps)
    counts = await backend.github.gap_counts()
    assert counts == {s: sum(g.state is s for g in gaps) for s in GapState}
    assert set(counts) == set(GapState)


async def test_closed_gaps_delivered_before_a_time_are_purged_and_open_ones_never(backend: Any) -> None:
    closed = sorted(set(GapState) - OPEN_STATES)
    old_closed = [gap(HOOKS[n % 3], f"old-{s.value}-{n}", T0 + n, s) for n, s in enumerate(closed * 2)]
    old_open = [
        gap(HOOKS[0], "old-missing", T0 + 1),
        gap(HOOKS[1], "old-requested", T0 + 2, GapState.REQUESTED, requests=1, last_requested_at=T0 + 9),
    ]
    at_the_time = gap(HOOKS[2], "at-the-time", T0 + 100, GapState.ARRIVED, arrived_at=T0 + 101)  # not before it
    newer = gap(HOOKS[2], "newer", T0 + 200.5, GapState.REFUSED, error="HTTP 422")
    await backend.github.save_gaps([*old_closed, *old_open, at_the_time, newer])

    assert await backend.github.purge_gaps(before=T0 + 100) == len(old_closed)
    kept = [*old_open, at_the_time, newer]
    assert await all_gaps(backend, 50) == sorted(kept, key=order, reverse=True)
    for g in old_closed:
        assert await backend.github.gaps_for(g.hook, [g.delivery_id]) == {}
    assert await backend.github.gap_counts() == {s: sum(g.state is s for g in kept) for s in GapState}
    assert await backend.github.purge_gaps(before=T0 + 100) == 0  # nothing left to purge
    assert [g.delivery_id for g in await backend.github.open_gaps(HOOKS[1])] == ["old-requested"]

    await backend.github.save_gaps([replace(old_open[0], state=GapState.EXPIRED, updated_at=T0 + 500)])  # closed now
    assert await backend.github.purge_gaps(before=T0 + 1000) == 3  # it, `at_the_time` and `newer`
    assert await all_gaps(backend, 50) == [old_open[1]]


async def test_a_purge_deletes_at_most_its_limit_and_the_next_one_goes_on(backend: Any) -> None:
    extra = 7
    gaps = [gap(HOOKS[n % 3], f"p-{n:04d}", T0 + n, GapState.ARRIVED) for n in range(PURGE_LIMIT + extra)]
    await backend.github.save_gaps([*gaps, gap(HOOKS[0], "open", T0, GapState.MISSING)])
    assert await backend.github.purge_gaps(before=T0 + len(gaps)) == PURGE_LIMIT
    assert await backend.github.purge_gaps(before=T0 + len(gaps)) == extra
    assert await backend.github.purge_gaps(before=T0 + len(gaps)) == 0
    assert [g.delivery_id for g in await all_gaps(backend, 50)] == ["open"]


# --- scans ------------------------------------------------------------------------------------------------------


async def test_each_hooks_last_run_is_kept_and_replaced(backend: Any) -> None:
    assert await backend.github.get_scan(HOOKS[0]) is None
    assert await backend.github.list_scans() == []
    failed = HookScan(HOOKS[0], last_run_at=T0 + 60, last_ok_at=None, error="HTTP 502: Bad Gateway",
                      newest_seen_at=None, deliveries_seen=0, requests_made=1)  # fmt: skip
    good = HookScan(HOOKS[1], last_run_at=T0 + 30.25, last_ok_at=T0 + 30.25, error=None, newest_seen_at=T0 - 120.5,
                    deliveries_seen=312, requests_made=5)  # fmt: skip
    for scan in (failed, good):
        await backend.github.save_scan(scan)
    assert await backend.github.get_scan(HOOKS[0]) == failed
    assert await backend.github.get_scan(HOOKS[1]) == good
    recovered = replace(failed, last_run_at=T0 + 120, last_ok_at=T0 + 120, error=None, newest_seen_at=T0 + 100)
    await backend.github.save_scan(recovered)
    assert await backend.github.list_scans() == [recovered, good]  # by hook


# --- tracked repositories ---------------------------------------------------------------------------------------


def tracked(key: str, **fields: Any) -> TrackedRepository:
    return TrackedRepository(key=key, **({"full_name": key, "added_at": T0, "added_by": "cli"} | fields))


async def test_tracked_repositories_are_added_saved_listed_and_removed(backend: Any) -> None:
    assert await backend.github.list_tracked() == []
    api = tracked("acme/api", full_name="acme/API")
    assert await backend.github.add_tracked(api) is True
    assert await backend.github.add_tracked(tracked("acme/api", full_name="ACME/api", added_by="api")) is False
    assert await backend.github.get_tracked("acme/api") == api  # left as it was
    polled = replace(
        api, full_name="Acme/API", repository_id=2**40, etag='W/"6d82cbb0"', known={2**40 + 1: "sha256:ab", 7: "c"},
        last_polled_at=T0 + 60.5, last_status=200, last_changed_at=T0 + 60.5, next_poll_at=T0 + 360.5, polls=1,
    )  # fmt: skip
    await backend.github.save_tracked(polled)
    found = await backend.github.get_tracked("acme/api")
    assert found == polled
    assert dict(found.known) == {2**40 + 1: "sha256:ab", 7: "c"}  # int keys, as saved
    failing = replace(polled, last_status=0, last_error="timed out", known={}, etag=None, polls=2, not_modified=1)
    await backend.github.save_tracked(failing)
    assert await backend.github.get_tracked("acme/api") == failing
    for key in ("acme/web", "acme-labs/x", "a/b"):
        assert await backend.github.add_tracked(tracked(key)) is True
    assert [r.key for r in await backend.github.list_tracked()] == ["a/b", "acme-labs/x", "acme/api", "acme/web"]
    assert await backend.github.get_tracked("acme/nothing") is None
    assert await backend.github.remove_tracked("acme/web") is True
    assert await backend.github.remove_tracked("acme/web") is False
    assert await backend.github.get_tracked("acme/web") is None
    assert await backend.github.add_tracked(tracked("acme/web")) is True  # tracked again after its removal


async def test_a_tracked_repositorys_known_releases_are_its_own_copy(backend: Any) -> None:
    known = {1: "a"}
    await backend.github.save_tracked(tracked("acme/api", known=known))
    known[2] = "b"  # the caller's mapping changes afterwards
    found = await backend.github.get_tracked("acme/api")
    assert dict(found.known) == {1: "a"}


# --- leases -------------------------------------------------------------------------------------------------------

LEASE = "reconcile"


async def test_a_lease_is_taken_renewed_and_refused_to_another_until_it_runs_out(
    backend: Any, clock: ManualClock
) -> None:
    start = clock.now()
    assert await backend.github.hold_lease(LEASE, "proc-a", until=start + 60) is True  # free: taken
    assert await backend.github.hold_lease(LEASE, "proc-b", until=start + 60) is False
    assert await backend.github.hold_lease("track", "proc-b", until=start + 60) is True  # another name: its own
    assert await backend.github.hold_lease(LEASE, "proc-a", until=start + 120) is True  # renewed, further
    clock.advance(119)
    assert await backend.github.hold_lease(LEASE, "proc-b", until=clock.now() + 60) is False  # the renewal holds
    clock.advance(1)  # `until` is reached: run out
    assert await backend.github.hold_lease(LEASE, "proc-b", until=clock.now() + 60) is True
    assert await backend.github.hold_lease(LEASE, "proc-a", until=clock.now() + 60) is False  # lost it
    assert await backend.github.hold_lease(LEASE, "proc-b", until=clock.now() + 30) is True  # renewed, shorter
    clock.advance(30)
    assert await backend.github.hold_lease(LEASE, "proc-a", until=clock.now() + 60) is True
    assert await backend.github.hold_lease("track", "proc-a", until=clock.now() + 60) is True  # ran out long ago


async def test_a_released_lease_is_taken_by_another_at_once(backend: Any, clock: ManualClock) -> None:
    now = clock.now()
    await backend.github.release_lease(LEASE, "proc-a")  # nobody holds it: nothing happens
    assert await backend.github.hold_lease(LEASE, "proc-a", until=now + 3600) is True
    await backend.github.release_lease(LEASE, "proc-b")  # not proc-b's: it stays proc-a's
    await backend.github.release_lease("track", "proc-a")  # another name
    assert await backend.github.hold_lease(LEASE, "proc-b", until=now + 3600) is False
    await backend.github.release_lease(LEASE, "proc-a")
    assert await backend.github.hold_lease(LEASE, "proc-b", until=now + 3600) is True  # no waiting for the end
    await backend.github.release_lease(LEASE, "proc-a")  # proc-a's second release: proc-b keeps it
    assert await backend.github.hold_lease(LEASE, "proc-a", until=now + 3600) is False


async def race(backends: list[Any], clock: ManualClock, rounds: int = 3, holders: int = 8) -> list[str]:
    """`holders` holders ask for the lease at once, spread over `backends`, `rounds` times (the first for a lease
    nobody held, then for one that ran out); each round, exactly one of them gets it. The winners."""
    winners = []
    for _ in range(rounds):
        names = [f"proc-{n}" for n in range(holders)]
        until = clock.now() + 60
        asks = [backends[n % len(backends)].github.hold_lease(LEASE, name, until=until) for n, name in enumerate(names)]
        answers = await asyncio.gather(*asks)
        assert sum(answers) == 1, answers
        winners.append(names[answers.index(True)])
        clock.advance(60)
    return winners


async def test_of_holders_asking_at_once_exactly_one_gets_the_lease(backend: Any, clock: ManualClock) -> None:
    await race([backend], clock)


@pytest.mark.needs("persistent")
async def test_of_processes_asking_at_once_exactly_one_gets_the_lease(
    backend: Any, reopen: Callable[[], AbstractAsyncContextManager[Any]], clock: ManualClock
) -> None:
    async with reopen() as other:  # a second process on the same storage (its own connections)
        winners = await race([backend, other], clock, rounds=4, holders=10)
        winner = winners[-1]  # holds it once more, for the other process to see
        assert await backend.github.hold_lease(LEASE, winner, until=clock.now() + 60) is True
        assert await other.github.hold_lease(LEASE, "proc-x", until=clock.now() + 60) is False
        await other.github.release_lease(LEASE, winner)  # given up by either process: it is one lease
        assert await backend.github.hold_lease(LEASE, "proc-x", until=clock.now() + 60) is True


# --- durability ---------------------------------------------------------------------------------------------------


@pytest.mark.needs("persistent")
async def test_everything_is_kept_across_a_reopening(
    backend: Any, reopen: Callable[[], AbstractAsyncContextManager[Any]], clock: ManualClock
) -> None:
    gaps = _many_gaps()
    scan = HookScan(HOOKS[2], last_run_at=T0, last_ok_at=T0, error=None, newest_seen_at=T0 - 1, deliveries_seen=3,
                    requests_made=2)  # fmt: skip
    repository = tracked("acme/api", known={3: "d"}, etag='"e"', next_poll_at=T0 + 300)
    await backend.github.save_gaps(gaps)
    await backend.github.save_scan(scan)
    assert await backend.github.add_tracked(repository) is True
    assert await backend.github.hold_lease(LEASE, "proc-a", until=clock.now() + 60) is True
    await backend.resources.close()
    async with reopen() as again:
        assert await again.github.hold_lease(LEASE, "proc-b", until=clock.now() + 60) is False
        assert await all_gaps(again, 10) == sorted(gaps, key=order, reverse=True)
        assert await again.github.gaps_for(gaps[0].hook, [gaps[0].delivery_id]) == {gaps[0].delivery_id: gaps[0]}
        assert await again.github.list_scans() == [scan]
        assert await again.github.list_tracked() == [repository]
        assert await again.github.add_tracked(repository) is False
