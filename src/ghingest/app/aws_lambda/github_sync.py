"""The schedule's GitHub sync: one round of what the server's background roles do all the time
(`Runtime._start_github_roles`), since this profile has no process that stays up.

- **Reconciliation**, when `GHINGEST_RECONCILE_HOOKS` names hooks: each hook's deliveries are listed from GitHub,
  the ones ghingest lacks are recorded as gaps and their redelivery requested (`Reconciler.run_once`). A
  redelivery arrives at the receiver function like any webhook.
- **Release tracking**: the configured repositories are tracked (`GHINGEST_TRACK_REPOSITORIES`, once per
  container), and every tracked repository that is due is polled; a new or changed release is appended to the
  inbox (DynamoDB, then the deliveries topic), and the processor function records it like a webhook's.

Each half runs only under its lease in the table (`reconcile`, `track`), taken for the rest of the invocation and
given up at its end: the function's reserved concurrency is 1, and yet a manual invocation, or a server on the same
table, never runs a half at the same time as this one. The work is bounded by the invocation's remaining time: no
hook, redelivery request or poll is started with less than `RESERVE_SECONDS` left; what was not reached stays due
for the next invocation (open gaps are followed up from the ledger, due repositories stay due).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ghingest.app.aws_lambda.container import current
from ghingest.app.aws_lambda.observe import METRICS, count
from ghingest.app.leases import holder_id, holding
from ghingest.app.logs import get_logger
from ghingest.app.runtime import Runtime

if TYPE_CHECKING:
    from ghingest.app.reconciler import HookReport, Reconciler
    from ghingest.app.tracker import PollResult, ReleaseTracker

RESERVE_SECONDS = 30.0  # no hook, redelivery request or poll is started with less than this left
LEASE_MARGIN_SECONDS = 10.0  # a lease outlives the invocation by this (clocks of two invocations may differ)
DEFAULT_BUDGET_SECONDS = 300.0  # without a Lambda context (a call from a shell or a test): the function's timeout
log = get_logger("ghingest.github_sync")


class Deadline:
    """The invocation's remaining time, as Lambda's context tells it (`get_remaining_time_in_millis`)."""

    def __init__(self, remaining: Callable[[], float]) -> None:
        self._remaining = remaining
        self.ran_out = False

    @classmethod
    def of(cls, context: Any) -> Deadline:
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            return cls(lambda: float(context.get_remaining_time_in_millis()) / 1000)
        ends = time.monotonic() + DEFAULT_BUDGET_SECONDS
        return cls(lambda: ends - time.monotonic())

    def left(self) -> float:
        return max(0.0, self._remaining())

    def may_start(self) -> bool:
        """Whether another piece of work may start (False, and remembered, once less than the reserve is left)."""
        if self.left() < RESERVE_SECONDS:
            self.ran_out = True
        return not self.ran_out


@dataclass
class SyncReport:
    """What one invocation did (its return value, its log line's fields, and its metrics)."""

    reconcile: str = "off"  # done, not_held (another invocation or process holds the lease), off (no hooks)
    track: str = "not_held"  # done, not_held
    hooks: int = 0  # hooks reconciled
    hook_errors: int = 0  # of those, failed (GitHub down, a rate limit, no access): recorded on the hook's scan
    gaps_found: int = 0
    redeliveries_requested: int = 0
    redeliveries_refused: int = 0
    gaps_arrived: int = 0
    polls: int = 0
    not_modified: int = 0  # polls answered 304 (no rate limit spent)
    releases: int = 0  # new or changed releases appended to the inbox
    poll_errors: int = 0
    out_of_time: bool = False  # work was left for the next invocation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add_hooks(self, reports: Sequence[HookReport]) -> None:
        self.hooks += len(reports)
        self.hook_errors += sum(1 for r in reports if r.error is not None)
        self.gaps_found += sum(r.found for r in reports)
        self.redeliveries_requested += sum(r.requested for r in reports)
        self.redeliveries_refused += sum(r.refused for r in reports)
        self.gaps_arrived += sum(r.arrived for r in reports)

    def add_polls(self, results: Sequence[PollResult]) -> None:
        self.polls += len(results)
        self.not_modified += sum(1 for r in results if r.not_modified)
        self.releases += sum(r.changed for r in results)
        self.poll_errors += sum(1 for r in results if r.error is not None)


@dataclass
class GitHubRoles:
    """The reconciler (None without hooks) and the tracker, made once per runtime (a warm container keeps the
    tracker's rate-limit pause and GitHub's tokens)."""

    reconciler: Reconciler | None
    tracker: ReleaseTracker
    configured: bool = False  # the tracked list synced with GHINGEST_TRACK_REPOSITORIES in this container

    @classmethod
    def of(cls, runtime: Runtime) -> GitHubRoles:
        hooks = runtime.settings.reconcile_hooks
        return cls(reconciler=runtime.reconciler() if hooks else None, tracker=runtime.tracker())


async def sync(runtime: Runtime, roles: GitHubRoles, deadline: Deadline) -> SyncReport:
    """One round of each half whose lease this invocation takes; both leases given up at the end."""
    report = SyncReport()
    state, holder, clock = runtime.backend.github, holder_id(), runtime.clock
    ttl = deadline.left() + LEASE_MARGIN_SECONDS
    work: list[Callable[[], Awaitable[None]]] = []
    async with contextlib.AsyncExitStack() as leases:
        if roles.reconciler is not None:
            reconciler = roles.reconciler
            lease = await leases.enter_async_context(holding(state, "reconcile", holder=holder, ttl=ttl, clock=clock))
            report.reconcile = "done" if lease.held else "not_held"
            if lease.held:
                work.append(lambda: _reconcile(reconciler, report, deadline))
        lease = await leases.enter_async_context(holding(state, "track", holder=holder, ttl=ttl, clock=clock))
        report.track = "done" if lease.held else "not_held"
        if lease.held:
            work.append(lambda: _track(roles, runtime.settings.track_repositories, report, deadline))
        # The halves are independent, as the server's two tasks are: one that fails lets the other finish.
        outcomes = await asyncio.gather(*(start() for start in work), return_exceptions=True)
    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    report.out_of_time = deadline.ran_out
    _count(report)
    log.info("github_sync.done", **report.as_dict(), failed=[e.__class__.__name__ for e in failed] or None)
    if failed:
        raise failed[0]  # the function's error, which its alarm sees (the store, the configuration; not GitHub)
    return report


async def _reconcile(reconciler: Reconciler, report: SyncReport, deadline: Deadline) -> None:
    report.add_hooks(await reconciler.run_once(may_continue=deadline.may_start))


async def _track(roles: GitHubRoles, configured: Sequence[str], report: SyncReport, deadline: Deadline) -> None:
    if not roles.configured:
        await roles.tracker.sync_config(configured)
        roles.configured = True
    report.add_polls(await roles.tracker.poll_due(may_start=deadline.may_start))


def _count(report: SyncReport) -> None:
    for name, value in (
        ("ReconcileHooks", report.hooks),
        ("ReconcileHookErrors", report.hook_errors),
        ("ReconcileGapsFound", report.gaps_found),
        ("RedeliveriesRequested", report.redeliveries_requested),
        ("RedeliveriesRefused", report.redeliveries_refused),
        ("ReconcileGapsArrived", report.gaps_arrived),
        ("ReleasePolls", report.polls),
        ("ReleasePollsNotModified", report.not_modified),
        ("ReleasesPolled", report.releases),
        ("ReleasePollErrors", report.poll_errors),
        ("GitHubSyncOutOfTime", int(report.out_of_time)),
    ):
        count(name, value)


@METRICS.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deadline = Deadline.of(context)
    container = current()
    roles = container.built("github_sync", GitHubRoles.of)
    return container.run(sync(container.runtime(), roles, deadline)).as_dict()
