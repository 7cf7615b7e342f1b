"""Reconciliation with GitHub's deliveries API, as plain decisions: which of a hook's deliveries ghingest lacks
(a *gap*), when to ask GitHub to redeliver one, and what became of each request. No I/O: the reconciler role
(`ghingest.app.reconciler`) pages through the API, asks the store what it holds, and applies these rules.

A gap is judged per hook, as the dedupe rule defines it (docs/adr/0010-dedupe-key.md): hook B's delivery X is
here when X was recorded from hook B or a sighting of hook B's copy was. Each gap's life:

    missing ──request──▶ requested ──(the redelivery is recorded)──▶ arrived
       │                    │ └─(no arrival after `retry_after`, fewer than `max_requests`)──▶ request again
       │                    └─(`max_requests` made, none arrived)──▶ gave_up
       └─(GitHub refused the request: 404, 422 …)──▶ refused        (older than the horizon, unresolved) ─▶ expired

A gap is never requested twice within `retry_after`, nor more than `max_requests` times: no loop asks GitHub for
the same redelivery over and over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from ghingest.core.github_hooks import HookDelivery, HookRef


class GapState(StrEnum):
    """Where a gap stands: found, redelivery requested, arrived, or unresolved for good (gave_up, refused, expired)."""

    MISSING = "missing"  # found; no redelivery requested yet
    REQUESTED = "requested"  # a redelivery was requested (GitHub answered 202); waiting for it to arrive
    ARRIVED = "arrived"  # the hook's copy is recorded now
    GAVE_UP = "gave_up"  # `max_requests` redeliveries requested, none arrived: still missing
    REFUSED = "refused"  # GitHub refused to redeliver it (e.g. 404 gone, 422 too old)
    EXPIRED = "expired"  # past the horizon (GitHub's redelivery window) while still unresolved


OPEN_STATES = frozenset({GapState.MISSING, GapState.REQUESTED})
STILL_MISSING = frozenset({GapState.MISSING, GapState.REQUESTED, GapState.GAVE_UP, GapState.REFUSED, GapState.EXPIRED})


class GapKind(StrEnum):
    """lost: no hook's copy of the event is here; hook: another hook's copy is, this hook's is not."""

    LOST = "lost"  # no hook's copy of the event is here: the event itself is missing
    HOOK = "hook"  # the event is here from another hook; this hook's copy is not (a sighting is missing)


@dataclass(frozen=True, slots=True)
class Gap:
    """A delivery GitHub lists for a hook that ghingest did not record from that hook."""

    hook: str  # HookRef.key
    delivery_id: str  # the guid (X-GitHub-Delivery)
    github_id: int  # the attempt to redeliver (the newest one GitHub listed)
    event: str
    action: str | None
    delivered_at: float  # when GitHub first tried (epoch seconds)
    status_code: int  # GitHub's last recorded answer from ghingest (0: none)
    github_status: str
    kind: GapKind
    state: GapState
    found_at: float
    updated_at: float
    requests: int = 0  # redeliveries requested so far
    last_requested_at: float | None = None
    arrived_at: float | None = None
    error: str | None = None  # GitHub's refusal, or the last failed request's reason


@dataclass(frozen=True, slots=True)
class HookScan:
    """What the last reconciliation of one hook did: for the dashboard, metrics and the next run's start."""

    hook: str
    last_run_at: float
    last_ok_at: float | None  # the last run that paged to the horizon without an error
    error: str | None  # the last run's error (None when it went well)
    newest_seen_at: float | None  # the newest `delivered_at` the last good run judged
    deliveries_seen: int  # in the last run
    requests_made: int  # API requests of the last run (pages, redeliveries, tokens)


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    horizon: float = 71 * 3600.0  # look back this far (GitHub redelivers for 3 days on github.com, 7 on GHES)
    min_age: float = 120.0  # leave deliveries younger than this for the next run (they may be in flight here)
    retry_after: float = 900.0  # ask again when a requested redelivery has not arrived after this long
    max_requests: int = 3  # ask at most this often for one gap
    overlap: float = 600.0  # an incremental run re-reads this far behind the last good run's newest delivery


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one hook's listed deliveries come to."""

    gaps: tuple[Gap, ...]  # new or changed gaps to save
    to_request: tuple[Gap, ...]  # gaps to ask GitHub to redeliver now (in `gaps` too)
    seen: int  # deliveries judged
    newest: float | None  # the newest `delivered_at` judged


def newest_attempts(deliveries: Iterable[HookDelivery]) -> dict[str, HookDelivery]:
    """Per guid, its newest attempt (GitHub lists every attempt; a redelivery is one of them)."""
    newest: dict[str, HookDelivery] = {}
    for d in deliveries:
        seen = newest.get(d.guid)
        if seen is None or (d.delivered_at, d.id) > (seen.delivered_at, seen.id):
            newest[d.guid] = d
    return newest


def judge(
    hook: HookRef,
    deliveries: Sequence[HookDelivery],
    *,
    recorded: Mapping[str, frozenset[str]],
    known: Mapping[str, Gap],
    now: float,
    policy: ReconcilePolicy,
) -> Judgement:
    """Judge one hook's deliveries (every attempt listed within the window being read).

    `recorded`: per delivery id that ghingest holds, the hook ids it came from (`Reads.hooks_seen`).
    `known`: the gaps already saved for these delivery ids (`GitHubSyncState.gaps_for`).
    """
    gaps: list[Gap] = []
    to_request: list[Gap] = []
    first_attempt: dict[str, float] = {}
    for d in deliveries:
        first_attempt[d.guid] = min(first_attempt.get(d.guid, d.delivered_at), d.delivered_at)
    latest = newest_attempts(deliveries)
    judged = 0
    newest: float | None = None
    for guid, attempt in latest.items():
        first = first_attempt[guid]
        if now - first < policy.min_age:
            continue  # in flight: the next run judges it
        if now - first > policy.horizon:
            gap = known.get(guid)
            if gap is not None and gap.state in OPEN_STATES:
                gaps.append(replace(gap, state=GapState.EXPIRED, updated_at=now))
            continue
        judged += 1
        newest = first if newest is None else max(newest, first)
        hooks = recorded.get(guid, frozenset())
        gap = known.get(guid)
        if hook.delivered_by(hooks):
            if gap is not None and gap.state is not GapState.ARRIVED:
                gaps.append(replace(gap, state=GapState.ARRIVED, arrived_at=now, updated_at=now, error=None))
            continue
        kind = GapKind.HOOK if hooks else GapKind.LOST
        if gap is None:
            gap = Gap(
                hook=hook.key, delivery_id=guid, github_id=attempt.id, event=attempt.event, action=attempt.action,
                delivered_at=first, status_code=attempt.status_code, github_status=attempt.status, kind=kind,
                state=GapState.MISSING, found_at=now, updated_at=now,
            )  # fmt: skip
            gaps.append(gap)
        else:
            moved = replace(gap, github_id=attempt.id, status_code=attempt.status_code,
                            github_status=attempt.status, kind=kind)  # fmt: skip
            if moved != gap:
                gap = replace(moved, updated_at=now)
                gaps.append(gap)
        if due(gap, now=now, policy=policy):
            to_request.append(gap)
        elif gap.state is GapState.REQUESTED and gap.requests >= policy.max_requests and _waited(gap, now, policy):
            gaps.append(replace(gap, state=GapState.GAVE_UP, updated_at=now))
    return Judgement(gaps=tuple(_last_of_each(gaps)), to_request=tuple(to_request), seen=judged, newest=newest)


def due(gap: Gap, *, now: float, policy: ReconcilePolicy) -> bool:
    """Whether a redelivery should be requested for this gap now."""
    if gap.state is GapState.MISSING:
        return gap.requests < policy.max_requests
    if gap.state is GapState.REQUESTED:
        return gap.requests < policy.max_requests and _waited(gap, now, policy)
    return False


def _waited(gap: Gap, now: float, policy: ReconcilePolicy) -> bool:
    return gap.last_requested_at is None or now - gap.last_requested_at >= policy.retry_after


def requested(gap: Gap, *, now: float) -> Gap:
    """The gap after GitHub accepted a redelivery request (202)."""
    return replace(gap, state=GapState.REQUESTED, requests=gap.requests + 1, last_requested_at=now,
                   updated_at=now, error=None)  # fmt: skip


def refused(gap: Gap, *, now: float, reason: str) -> Gap:
    """The gap after GitHub refused to redeliver it for good (4xx other than a rate limit)."""
    return replace(gap, state=GapState.REFUSED, updated_at=now, error=reason[:300])


def request_failed(gap: Gap, *, now: float, reason: str) -> Gap:
    """The gap after a request that may succeed later failed (5xx, network, rate limit): left as it was."""
    return replace(gap, updated_at=now, error=reason[:300])


def window_start(scan: HookScan | None, *, now: float, policy: ReconcilePolicy) -> float:
    """How far back this run pages: to the horizon, or, after a good run, to a little behind its newest delivery
    (a delivery judged there cannot change: it was recorded, or it is a gap saved in the store)."""
    horizon = now - policy.horizon
    if scan is None or scan.newest_seen_at is None or scan.error is not None:
        return horizon
    return max(horizon, scan.newest_seen_at - policy.overlap)


def _last_of_each(gaps: Iterable[Gap]) -> list[Gap]:
    out: dict[str, Gap] = {}
    for gap in gaps:
        out[gap.delivery_id] = gap
    return list(out.values())


def follow_up(
    gaps: Iterable[Gap], *, recorded: Mapping[str, frozenset[str]], hook: HookRef, now: float, policy: ReconcilePolicy
) -> Judgement:
    """Open gaps of a hook that this run's pages did not reach (older than its window): arrived, expired, due for
    another request, or given up — without listing them again."""
    changed: list[Gap] = []
    to_request: list[Gap] = []
    for gap in gaps:
        if gap.state not in OPEN_STATES:
            continue
        if hook.delivered_by(recorded.get(gap.delivery_id, frozenset())):
            changed.append(replace(gap, state=GapState.ARRIVED, arrived_at=now, updated_at=now, error=None))
        elif now - gap.delivered_at > policy.horizon:
            changed.append(replace(gap, state=GapState.EXPIRED, updated_at=now))
        elif due(gap, now=now, policy=policy):
            to_request.append(gap)
        elif gap.state is GapState.REQUESTED and gap.requests >= policy.max_requests and _waited(gap, now, policy):
            changed.append(replace(gap, state=GapState.GAVE_UP, updated_at=now))
    return Judgement(gaps=tuple(changed), to_request=tuple(to_request), seen=0, newest=None)
