"""The AuditLog contract: entries kept as given (selection and result as JSON documents), read by id, listed newest
first (ties by id) in keyset pages, with action, actor, time and outcome filters; kept across a reopening."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ghingest.core.pagination import InvalidCursor
from ghingest.ports import AuditEntry, AuditQuery, ManualClock

pytestmark = pytest.mark.needs("audit")


def entry(n: int, at: float, *, action: str = "replay", actor: str = "alice", ok: bool = True) -> AuditEntry:
    return AuditEntry(
        id=f"e{n:03d}",
        at=at,
        actor=actor,
        client="203.0.113.7",
        action=action,
        selection={"delivery_id": f"d-{n}", "job_ids": 3, "to": None},
        result={"queued": n} if ok else {"error": "StoreUnavailable: the database does not answer"},
        ok=ok,
    )


async def every(backend: Any, query: AuditQuery) -> list[str]:
    """The ids of every page of `query`, in order."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await backend.audit.list(dataclasses.replace(query, cursor=cursor))
        assert len(page.items) <= query.limit
        ids += [e.id for e in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def test_an_entry_reads_back_as_it_was_appended(backend: Any, clock: ManualClock) -> None:
    kept = AuditEntry(
        id="abc123",
        at=clock.now() + 0.25,
        actor="api token 1",
        client=None,
        action="sign_in_failed",
        selection={"method": "password", "user": "zoë", "nested": {"list": [1, 2.5, "x"], "none": None}},
        result={"error": "Those credentials are not valid."},
        ok=False,
    )
    await backend.audit.append(kept)
    assert await backend.audit.get("abc123") == kept
    assert await backend.audit.get("nope") is None


async def test_entries_are_listed_newest_first_in_pages(backend: Any, clock: ManualClock) -> None:
    t = clock.now()
    for n, at in enumerate([t + 3, t + 1, t + 2, t + 2, t + 5]):
        await backend.audit.append(entry(n, at))
    expected = ["e004", "e000", "e003", "e002", "e001"]  # e002 and e003 at the same time: by id, descending
    assert [e.id for e in (await backend.audit.list(AuditQuery())).items] == expected
    assert await every(backend, AuditQuery(limit=2)) == expected
    first = await backend.audit.list(AuditQuery(limit=2))
    assert first.next_cursor is not None
    assert [e.id for e in (await backend.audit.list(AuditQuery(limit=2, cursor=first.next_cursor))).items] == [
        "e003",
        "e002",
    ]


async def test_filters_narrow_the_list_and_its_pages(backend: Any, clock: ManualClock) -> None:
    t = clock.now()
    await backend.audit.append(entry(1, t + 1, action="replay", actor="alice"))
    await backend.audit.append(entry(2, t + 2, action="retry", actor="bob", ok=False))
    await backend.audit.append(entry(3, t + 3, action="retry", actor="alice"))
    await backend.audit.append(entry(4, t + 4, action="sign_in", actor="bob"))
    await backend.audit.append(entry(5, t + 5, action="retry", actor="alice", ok=False))
    assert await every(backend, AuditQuery(action="retry", limit=1)) == ["e005", "e003", "e002"]
    assert await every(backend, AuditQuery(actor="bob", limit=1)) == ["e004", "e002"]
    assert await every(backend, AuditQuery(action="retry", actor="alice", limit=1)) == ["e005", "e003"]
    assert await every(backend, AuditQuery(ok=False)) == ["e005", "e002"]
    assert await every(backend, AuditQuery(ok=True, actor="alice")) == ["e003", "e001"]
    assert await every(backend, AuditQuery(since=t + 2, until=t + 4, limit=1)) == ["e003", "e002"]
    assert await every(backend, AuditQuery(since=t + 4.5)) == ["e005"]
    assert await every(backend, AuditQuery(until=t + 1.5)) == ["e001"]
    assert await every(backend, AuditQuery(action="retry", actor="alice", since=t + 4)) == ["e005"]
    assert await every(backend, AuditQuery(action="destination_pause")) == []  # an action nothing wrote yet


async def test_an_unreadable_cursor_raises_invalid_cursor(backend: Any) -> None:
    for cursor in ("not a cursor", "WyJ4Il0", "WzEuMCwgMl0"):  # garbage, ["x"], [1.0, 2]
        with pytest.raises(InvalidCursor):
            await backend.audit.list(AuditQuery(cursor=cursor))


@pytest.mark.needs("persistent")
async def test_entries_are_kept_across_a_reopening(backend: Any, reopen: Any, clock: ManualClock) -> None:
    await backend.audit.append(entry(1, clock.now()))
    async with reopen() as again:
        assert await again.audit.get("e001") == entry(1, clock.now())
        assert [e.id for e in (await again.audit.list(AuditQuery())).items] == ["e001"]
