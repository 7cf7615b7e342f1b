"""The GitHubSyncState contract: reconciliation's gaps (keyed by hook and delivery id, read by id, open ones oldest
first, listed newest first in keyset pages, counted per state), each hook's last run, and the tracked repositories,
all kept across a reopening of the backend."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import pytest

from ghingest.core.pagination import InvalidCursor, encode_cursor
from ghingest.core.reconcile import Gap, GapKind, GapState, HookScan
from ghingest.core.tracking import TrackedRepository
from ghingest.ports import ManualClock

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
    await backend.resources.close()
    async with reopen() as again:
        assert await all_gaps(again, 10) == sorted(gaps, key=order, reverse=True)
        assert await again.github.gaps_for(gaps[0].hook, [gaps[0].delivery_id]) == {gaps[0].delivery_id: gaps[0]}
        assert await again.github.list_scans() == [scan]
        assert await again.github.list_tracked() == [repository]
        assert await again.github.add_tracked(repository) is False
