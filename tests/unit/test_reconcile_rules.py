"""core.reconcile: which of a hook's deliveries are gaps, when a redelivery is asked for, and what became of it."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.core import reconcile as rules
from ghingest.core.github_hooks import HookDelivery, HookKind, HookRef, InvalidHookRef
from ghingest.core.reconcile import GapKind, GapState, ReconcilePolicy

HOOK = HookRef.parse("repo:acme/widgets:42")
NOW = 1_800_000_000.0
POLICY = ReconcilePolicy(horizon=3 * 86400, min_age=120, retry_after=900, max_requests=3)


def attempt(guid: str, *, age: float = 3600, status_code: int = 502, ident: int = 1, redelivery: bool = False):
    return HookDelivery(id=ident, guid=guid, delivered_at=NOW - age, redelivery=redelivery, status="x",
                        status_code=status_code, event="push", action=None)  # fmt: skip


def judge(deliveries, recorded=None, known=None, now=NOW):
    return rules.judge(HOOK, deliveries, recorded=recorded or {}, known=known or {}, now=now, policy=POLICY)


def test_hook_refs_parse_and_name_their_paths():
    repo = HookRef.parse("repo:acme/widgets:42")
    assert (repo.kind, repo.owner, repo.repo, repo.hook_id) == (HookKind.REPOSITORY, "acme", "widgets", 42)
    assert repo.deliveries_path == "/repos/acme/widgets/hooks/42/deliveries"
    assert repo.redelivery_path(7) == "/repos/acme/widgets/hooks/42/deliveries/7/attempts"
    assert HookRef.parse("org:acme:9").deliveries_path == "/orgs/acme/hooks/9/deliveries"
    assert HookRef.parse("app").deliveries_path == "/app/hook/deliveries"
    assert HookRef.parse(" app:5 ").key == "app:5"
    for bad in ("repo:acme:1", "org:acme", "repo:../x/y:1", "hook:1", "repo:a/b:1x", ""):
        try:
            HookRef.parse(bad)
        except InvalidHookRef:
            continue
        raise AssertionError(f"{bad!r} parsed")


def test_list_items_that_are_not_shaped_as_documented_are_skipped():
    good = {"id": 1, "guid": "g", "delivered_at": "2026-01-01T00:00:00Z", "status_code": 200, "event": "push"}
    assert HookDelivery.from_api(good) is not None
    for bad in (
        None,
        [],
        {**good, "id": "1"},
        {**good, "id": True},
        {**good, "guid": ""},
        {**good, "guid": 5},
        {**good, "delivered_at": "yesterday"},
        {**good, "delivered_at": None},
        {**good, "id": 2**64},
    ):
        assert HookDelivery.from_api(bad) is None
    odd = HookDelivery.from_api({**good, "status_code": "500", "action": 3, "event": None})
    assert odd is not None
    assert (odd.status_code, odd.action, odd.event) == (0, None, "")


def test_a_delivery_recorded_from_this_hook_is_no_gap_whatever_github_says():
    j = judge([attempt("a", status_code=504)], recorded={"a": frozenset({"42"})})
    assert j.gaps == ()
    assert j.to_request == ()
    assert j.seen == 1


def test_a_delivery_recorded_only_from_another_hook_is_a_gap_of_this_hook():
    j = judge([attempt("a", status_code=200)], recorded={"a": frozenset({"7"})})
    (gap,) = j.gaps
    assert (gap.kind, gap.state, gap.hook) == (GapKind.HOOK, GapState.MISSING, HOOK.key)
    assert j.to_request == (gap,)


def test_an_unrecorded_delivery_is_a_lost_gap_even_when_github_saw_a_2xx():
    (gap,) = judge([attempt("a", status_code=200)]).gaps
    assert gap.kind is GapKind.LOST


def test_the_app_hook_without_an_id_counts_any_hooks_copy():
    app = HookRef.parse("app")
    assert app.delivered_by(frozenset({"123"}))
    assert not app.delivered_by(frozenset())
    assert HookRef.parse("app:5").delivered_by(frozenset({"5"}))
    assert not HookRef.parse("app:5").delivered_by(frozenset({"6"}))


def test_young_and_old_deliveries_are_not_judged():
    j = judge([attempt("young", age=60), attempt("old", age=4 * 86400)])
    assert j.gaps == ()
    assert j.seen == 0


def test_the_newest_attempt_is_the_one_redelivered_and_the_first_dates_the_gap():
    first = attempt("a", age=7200, ident=1)
    again = attempt("a", age=3600, ident=2, redelivery=True)
    (gap,) = judge([again, first]).gaps
    assert gap.github_id == 2
    assert gap.delivered_at == NOW - 7200


def test_a_requested_gap_is_not_asked_again_before_retry_after_nor_past_max_requests():
    (gap,) = judge([attempt("a")]).gaps
    gap = rules.requested(gap, now=NOW)
    assert judge([attempt("a")], known={"a": gap}, now=NOW + 60).to_request == ()
    later = judge([attempt("a")], known={"a": gap}, now=NOW + 901)
    assert [g.delivery_id for g in later.to_request] == ["a"]
    for n in range(2):
        gap = rules.requested(gap, now=NOW + 1000 * (n + 1))
    assert gap.requests == 3
    done = judge([attempt("a", age=3600 - 5000)], known={"a": gap}, now=NOW + 5000)
    assert done.to_request == ()
    assert [g.state for g in done.gaps] == [GapState.GAVE_UP]


def test_a_gap_arrives_when_this_hooks_copy_is_recorded():
    (gap,) = judge([attempt("a")]).gaps
    gap = rules.requested(gap, now=NOW)
    (arrived,) = judge([attempt("a")], recorded={"a": frozenset({"42"})}, known={"a": gap}, now=NOW + 30).gaps
    assert arrived.state is GapState.ARRIVED
    assert arrived.arrived_at == NOW + 30


def test_follow_up_handles_gaps_beyond_the_window():
    (gap,) = judge([attempt("a")]).gaps
    arrived = rules.follow_up([gap], recorded={"a": frozenset({"42"})}, hook=HOOK, now=NOW, policy=POLICY)
    assert [g.state for g in arrived.gaps] == [GapState.ARRIVED]
    expired = rules.follow_up([gap], recorded={}, hook=HOOK, now=NOW + 4 * 86400, policy=POLICY)
    assert [g.state for g in expired.gaps] == [GapState.EXPIRED]
    due = rules.follow_up([gap], recorded={}, hook=HOOK, now=NOW, policy=POLICY)
    assert due.to_request == (gap,)
    closed = replace(gap, state=GapState.REFUSED)
    assert rules.follow_up([closed], recorded={}, hook=HOOK, now=NOW, policy=POLICY).to_request == ()


def test_the_window_starts_at_the_horizon_then_just_behind_the_last_good_run():
    assert rules.window_start(None, now=NOW, policy=POLICY) == NOW - POLICY.horizon
    scan = rules.HookScan(hook=HOOK.key, last_run_at=NOW - 300, last_ok_at=NOW - 300, error=None,
                          newest_seen_at=NOW - 400, deliveries_seen=3, requests_made=1)  # fmt: skip
    assert rules.window_start(scan, now=NOW, policy=POLICY) == NOW - 400 - POLICY.overlap
    assert rules.window_start(replace(scan, error="down"), now=NOW, policy=POLICY) == NOW - POLICY.horizon


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.tuples(st.floats(min_value=0, max_value=3000), st.booleans()), min_size=1, max_size=30))
def test_no_gap_is_ever_requested_more_than_max_requests_or_twice_within_retry_after(runs):
    """Whatever the pace of runs and whether GitHub accepted each request, the requests of one gap are at most
    `max_requests`, each at least `retry_after` after the previous one."""
    now, known, accepted_at = NOW, {}, []
    for step, accepted in runs:
        now += step
        j = rules.judge(HOOK, [attempt("a", age=3600 - (now - NOW))], recorded={}, known=known, now=now,
                        policy=POLICY)  # fmt: skip
        for gap in j.gaps:
            known[gap.delivery_id] = gap
        for gap in j.to_request:
            if accepted:
                accepted_at.append(now)
                known[gap.delivery_id] = rules.requested(gap, now=now)
            else:
                known[gap.delivery_id] = rules.request_failed(gap, now=now, reason="503")
    assert len(accepted_at) <= POLICY.max_requests
    assert all(b - a >= POLICY.retry_after for a, b in itertools.pairwise(accepted_at))
    if "a" in known:
        assert known["a"].requests == len(accepted_at)
