"""The reconciler role: for each configured hook, page through GitHub's list of its deliveries, find those that
ghingest did not record from that hook (`core.reconcile`), ask GitHub to redeliver them, and keep what was asked
and what came of it (`ports.GitHubSyncState`). Run by `ghingest reconcile`, and every `GHINGEST_RECONCILE_INTERVAL`
seconds by the processes that hold the `reconcile` lease.

A hook's failure (GitHub down, a rate limit beyond `GHINGEST_GITHUB_MAX_WAIT`, a token without access) is
recorded on its scan and never stops the other hooks. A run with a time limit (a Lambda invocation) passes
`may_continue`: asked before each hook and each redelivery request, it ends the run early, and what was not
reached waits for the next run (open gaps are followed up from the ledger).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.scheduling import pause
from ghingest.core import reconcile as rules
from ghingest.core.github_hooks import HookDelivery, HookRef
from ghingest.core.reconcile import Gap, GapKind, GapState, HookScan, ReconcilePolicy
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_api import GitHubApi, GitHubError, GitHubRefused
from ghingest.ports.github_sync import GitHubSyncState
from ghingest.ports.reads import Reads

log = get_logger("ghingest.reconcile")
LOOKUP_CHUNK = 100  # delivery ids per store look-up
FIRST_RUN_AFTER = 10.0  # s after start
CLOSED_GAPS_KEPT = 30 * 86400.0  # s: arrived, refused, given-up and expired gaps stay listed this long


@dataclass
class HookReport:
    """What one run did for one hook (the CLI prints it; the scan keeps it)."""

    hook: str
    seen: int = 0  # deliveries judged
    found: int = 0  # new gaps
    requested: int = 0  # redeliveries GitHub accepted
    refused: int = 0
    arrived: int = 0
    still_missing: int = 0  # open after this run
    requests: int = 0  # API requests made
    error: str | None = None
    would_request: list[str] = field(default_factory=list)  # with dry_run: the delivery ids


Progress = Callable[[str, int], None]  # (hook, deliveries read so far)
MayContinue = Callable[[], bool]  # whether a run may start another hook or request (False: time is up)


class Reconciler:
    def __init__(
        self,
        *,
        hooks: Sequence[HookRef],
        api: GitHubApi,
        state: GitHubSyncState,
        reads: Reads,
        policy: ReconcilePolicy,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.hooks = tuple(hooks)
        self._api = api
        self._state = state
        self._reads = reads
        self._policy = policy
        self._metrics = metrics
        self._clock = clock

    async def run_once(
        self, *, dry_run: bool = False, progress: Progress | None = None, may_continue: MayContinue | None = None
    ) -> list[HookReport]:
        """Reconcile every hook in turn; with `may_continue`, only while it allows (the reports of those done)."""
        reports = []
        for hook in self.hooks:
            if may_continue is not None and not may_continue():
                break
            reports.append(await self.reconcile(hook, dry_run=dry_run, progress=progress, may_continue=may_continue))
        if not dry_run:  # closed gaps are kept a while for the dashboard, then dropped
            await self._state.purge_gaps(before=self._clock.now() - CLOSED_GAPS_KEPT)
        if self._metrics is not None:
            counts = await self._state.gap_counts()
            for state, count in counts.items():
                self._metrics.reconcile_gaps.labels(state.value).set(count)
        return reports

    async def run(self, stop: asyncio.Event, *, interval: float, may_run: Callable[[], bool] | None = None) -> None:
        """Reconcile every `interval` seconds until `stop` is set (`may_run`: whether this process holds the lease
        this time). The first run waits a little (`FIRST_RUN_AFTER`, or the interval if shorter): a redelivery it
        asks for must find this process's receiver listening."""
        if await pause(stop, min(interval, FIRST_RUN_AFTER)):
            return
        while not stop.is_set():
            if may_run is None or may_run():
                try:
                    await self.run_once()
                except Exception as exc:  # the store is down, say: the next run tries again
                    log.warning("reconcile_failed", error=exc.__class__.__name__)
            await pause(stop, interval)

    async def reconcile(
        self,
        hook: HookRef,
        *,
        dry_run: bool = False,
        progress: Progress | None = None,
        may_continue: MayContinue | None = None,
    ) -> HookReport:
        report = HookReport(hook=hook.key)
        before = self._api.requests
        now = self._clock.now()
        scan = await self._state.get_scan(hook.key)
        since = rules.window_start(scan, now=now, policy=self._policy)
        newest: float | None = None
        error: str | None = None
        try:
            listed = await self._list(hook, since=since, progress=progress)
            judged, newest = await self._judge(hook, listed, report, now=now, dry_run=dry_run, more=may_continue)
            await self._follow_up(hook, skip=judged, report=report, now=now, dry_run=dry_run, more=may_continue)
        except GitHubError as exc:
            error = str(exc)
        report.error = error
        report.requests = self._api.requests - before
        report.still_missing = len(await self._state.open_gaps(hook.key))
        if not dry_run:
            await self._state.save_scan(
                HookScan(
                    hook=hook.key,
                    last_run_at=now,
                    last_ok_at=now if error is None else (scan.last_ok_at if scan else None),
                    error=error,
                    newest_seen_at=newest if newest is not None else (scan.newest_seen_at if scan else None),
                    deliveries_seen=report.seen,
                    requests_made=report.requests,
                )
            )
        self._count(report)
        log.info(
            "reconciled",
            hook=hook.key,
            seen=report.seen,
            found=report.found,
            requested=report.requested,
            arrived=report.arrived,
            still_missing=report.still_missing,
            requests=report.requests,
            error=error,
        )
        return report

    async def _list(self, hook: HookRef, *, since: float, progress: Progress | None) -> list[HookDelivery]:
        listed: list[HookDelivery] = []
        async for page in self._api.hook_deliveries(hook, since=since):
            listed.extend(d for d in page if d.delivered_at >= since)
            if progress is not None:
                progress(hook.key, len(listed))
        return listed

    async def _judge(
        self,
        hook: HookRef,
        listed: Sequence[HookDelivery],
        report: HookReport,
        *,
        now: float,
        dry_run: bool,
        more: MayContinue | None,
    ) -> tuple[set[str], float | None]:
        guids = list(dict.fromkeys(d.guid for d in listed))
        recorded: dict[str, frozenset[str]] = {}
        known: dict[str, Gap] = {}
        for start in range(0, len(guids), LOOKUP_CHUNK):
            chunk = guids[start : start + LOOKUP_CHUNK]
            recorded.update(await self._reads.hooks_seen(chunk))
            known.update(await self._state.gaps_for(hook.key, chunk))
        judgement = rules.judge(hook, listed, recorded=recorded, known=known, now=now, policy=self._policy)
        report.seen = judgement.seen
        report.found = sum(1 for g in judgement.gaps if g.delivery_id not in known)
        report.arrived += sum(1 for g in judgement.gaps if g.state is GapState.ARRIVED)
        for gap in judgement.gaps:
            if gap.delivery_id not in known and self._metrics is not None:
                self._metrics.reconcile_gaps_found.labels(hook.key, gap.kind.value).inc()
        await self._settle(hook, judgement, report, now=now, dry_run=dry_run, more=more)
        return set(guids), judgement.newest

    async def _follow_up(
        self, hook: HookRef, *, skip: set[str], report: HookReport, now: float, dry_run: bool, more: MayContinue | None
    ) -> None:
        gaps = [g for g in await self._state.open_gaps(hook.key) if g.delivery_id not in skip]
        recorded: dict[str, frozenset[str]] = {}
        for start in range(0, len(gaps), LOOKUP_CHUNK):
            recorded.update(await self._reads.hooks_seen([g.delivery_id for g in gaps[start : start + LOOKUP_CHUNK]]))
        judgement = rules.follow_up(gaps, recorded=recorded, hook=hook, now=now, policy=self._policy)
        report.arrived += sum(1 for g in judgement.gaps if g.state is GapState.ARRIVED)
        await self._settle(hook, judgement, report, now=now, dry_run=dry_run, more=more)

    async def _settle(
        self,
        hook: HookRef,
        judgement: rules.Judgement,
        report: HookReport,
        *,
        now: float,
        dry_run: bool,
        more: MayContinue | None,
    ) -> None:
        """Request what is due (the lost events first, then the oldest) while `more` allows, then save every
        changed gap (one not requested stays as judged: due at the next run)."""
        changed = {g.delivery_id: g for g in judgement.gaps}
        due = sorted(judgement.to_request, key=lambda g: (g.kind is not GapKind.LOST, g.delivered_at))
        try:
            for gap in due:
                if more is not None and not more():
                    break
                if dry_run:
                    report.would_request.append(gap.delivery_id)
                    continue
                try:
                    changed[gap.delivery_id] = await self._request(hook, gap, report)
                except GitHubError as exc:  # down or rate-limited: the rest wait for the next run
                    changed[gap.delivery_id] = rules.request_failed(gap, now=self._clock.now(), reason=str(exc))
                    raise
        finally:
            if not dry_run and changed:
                await self._state.save_gaps(list(changed.values()))

    async def _request(self, hook: HookRef, gap: Gap, report: HookReport) -> Gap:
        try:
            await self._api.redeliver(hook, gap.github_id)
        except GitHubRefused as exc:
            report.refused += 1
            self._count_request(hook, "refused")
            return rules.refused(gap, now=self._clock.now(), reason=str(exc))
        except GitHubError:
            self._count_request(hook, "failed")
            raise
        report.requested += 1
        self._count_request(hook, "requested")
        return rules.requested(gap, now=self._clock.now())

    def _count_request(self, hook: HookRef, result: str) -> None:
        if self._metrics is not None:
            self._metrics.reconcile_redeliveries.labels(hook.key, result).inc()

    def _count(self, report: HookReport) -> None:
        if self._metrics is None:
            return
        self._metrics.reconcile_runs.labels(report.hook, "ok" if report.error is None else "error").inc()
        if report.arrived:
            self._metrics.reconcile_arrived.labels(report.hook).inc(report.arrived)
