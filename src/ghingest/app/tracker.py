"""The release tracker role: poll the releases of the tracked repositories with conditional requests, and put each
new or changed release into the pipeline as a `release` delivery marked as polled (`core.tracking`).

Each repository is polled once per `GHINGEST_TRACK_INTERVAL`, at its own offset in the interval (so a thousand
repositories spread evenly), with `If-None-Match`: an unchanged repository answers 304, which costs no rate limit.
A rate limit that asks for a longer wait than `GHINGEST_GITHUB_MAX_WAIT` pauses every poll until it lifts. A
repository's failure (gone, private, GitHub down) is kept on its record and shown; it never stops the others.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ghingest.app.logs import get_logger
from ghingest.app.metrics import Metrics
from ghingest.app.scheduling import pause
from ghingest.core import tracking
from ghingest.core.tracking import TrackedRepository
from ghingest.ports.clock import SYSTEM_CLOCK, Clock
from ghingest.ports.github_api import GitHubApi, GitHubError, GitHubRateLimited
from ghingest.ports.github_sync import GitHubSyncState
from ghingest.ports.inbox import Inbox

log = get_logger("ghingest.track")
RELOAD_INTERVAL = 30.0  # s: how often the schedule re-reads the tracked list (another process may have added one)


@dataclass(frozen=True, slots=True)
class PollResult:
    repository: TrackedRepository  # as saved after the poll
    changed: int  # new or changed releases put into the pipeline
    not_modified: bool
    error: str | None


class ReleaseTracker:
    def __init__(
        self,
        *,
        api: GitHubApi,
        state: GitHubSyncState,
        inbox: Inbox,
        interval: float,
        page_size: int = 30,
        concurrency: int = 4,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._api = api
        self._state = state
        self._inbox = inbox
        self._interval = interval
        self._page_size = page_size
        self._concurrency = asyncio.Semaphore(concurrency)
        self._pollers = concurrency
        self._metrics = metrics
        self._clock = clock
        self._blocked_until = 0.0  # a rate limit pauses every poll until then

    async def add(self, names: Iterable[str], *, added_by: str) -> list[TrackedRepository]:
        """Track these repositories (`OWNER/REPO`; already tracked ones are left as they are); return the records."""
        out = []
        now = self._clock.now()
        for name in names:
            key = tracking.repository_key(name)
            record = TrackedRepository(
                key=key,
                full_name=name.strip().removeprefix("https://github.com/").rstrip("/"),
                added_at=now,
                added_by=added_by,
                next_poll_at=tracking.first_poll_at(key, now=now, interval=self._interval),
            )
            await self._state.add_tracked(record)
            out.append(await self._state.get_tracked(key) or record)
        return out

    async def sync_config(self, names: Sequence[str]) -> None:
        """Track the configured repositories (`GHINGEST_TRACK_REPOSITORIES`), and stop tracking those that an
        earlier configuration listed and this one does not (repositories added by `ghingest track` stay)."""
        await self.add(names, added_by="config")
        wanted = {tracking.repository_key(name) for name in names}
        for record in await self._state.list_tracked():
            if record.added_by == "config" and record.key not in wanted:
                await self._state.remove_tracked(record.key)

    async def poll(self, repository: TrackedRepository) -> PollResult:
        """Poll one repository now, and save what it found (with its next due time)."""
        now = self._clock.now()
        changed = 0
        not_modified = False
        error: str | None = None
        status = 0
        record = repository
        try:
            async with self._concurrency:
                if record.repository_id is None:  # the first poll: GitHub's spelling and id of the name
                    info = await self._api.repository(record.full_name)
                    record = replace(
                        record,
                        full_name=str(info.get("full_name") or record.full_name),
                        repository_id=info.get("id") if isinstance(info.get("id"), int) else None,
                    )
                answer = await self._api.releases(record.full_name, etag=record.etag, per_page=self._page_size)
            status = answer.status
            if answer.not_modified:
                not_modified = True
            else:
                changed, record = await self._record(record, answer.value or [], etag=answer.etag, now=now)
        except GitHubRateLimited as exc:
            self._blocked_until = max(self._blocked_until, exc.retry_at or now + 60)
            error, status = str(exc), exc.status
        except GitHubError as exc:
            error, status = str(exc), exc.status
        record = replace(
            record,
            last_polled_at=now,
            last_status=status,
            last_error=error,
            last_changed_at=now if changed else record.last_changed_at,
            polls=record.polls + 1,
            not_modified=record.not_modified + (1 if not_modified else 0),
            next_poll_at=tracking.next_poll_at(record.next_poll_at, now=now, interval=self._interval),
        )
        await self._state.save_tracked(record)
        self._count(changed=changed, not_modified=not_modified, error=error)
        if error is not None:
            log.warning("poll_failed", repository=record.key, status=status, error=error)
        elif changed:
            log.info("poll_changed", repository=record.key, releases=changed)
        return PollResult(record, changed, not_modified, error)

    async def _record(
        self, record: TrackedRepository, releases: Sequence[object], *, etag: str | None, now: float
    ) -> tuple[int, TrackedRepository]:
        owner, _, name = record.full_name.partition("/")
        repository = {"id": record.repository_id, "full_name": record.full_name, "name": name,
                      "owner": {"login": owner}}  # fmt: skip
        changes, digests = tracking.changed_releases(list(releases), repository=repository, known=record.known)
        appended = 0
        for change in changes:
            if await self._inbox.append(change.delivery, received_at=now):
                appended += 1
                if self._metrics is not None:
                    self._metrics.track_releases.labels(change.action).inc()
        return appended, replace(record, etag=etag, known=digests)

    async def poll_due(
        self, *, now: float | None = None, may_start: Callable[[], bool] | None = None
    ) -> list[PollResult]:
        """Poll every repository due now, the longest due first, at most `concurrency` at once. No poll is started
        while a rate limit pauses polling, nor once `may_start` says no (a run with a time limit): those stay due
        for the next run."""
        now = self._clock.now() if now is None else now
        due = sorted((r for r in await self._state.list_tracked() if r.next_poll_at <= now), key=_due_order)
        waiting = iter(enumerate(due))
        results: dict[int, PollResult] = {}

        async def poller() -> None:  # each takes the next due repository, until none is left or it may not
            for index, record in waiting:
                if self._clock.now() < self._blocked_until or (may_start is not None and not may_start()):
                    return
                results[index] = await self.poll(record)

        await asyncio.gather(*(poller() for _ in range(min(self._pollers, len(due)))))
        return [results[index] for index in sorted(results)]

    async def run(self, stop: asyncio.Event, *, may_run: Callable[[], bool] | None = None) -> None:
        """Poll each repository when it is due until `stop` is set (`may_run`: whether this process holds the
        lease this time)."""
        schedule: list[tuple[float, str]] = []
        reloaded_at = -RELOAD_INTERVAL
        while not stop.is_set():
            now = self._clock.now()
            if now - reloaded_at >= RELOAD_INTERVAL:
                schedule = await self._schedule()
                reloaded_at = now
            if now < self._blocked_until:
                await pause(stop, min(self._blocked_until - now, RELOAD_INTERVAL))
                continue
            due: list[str] = []
            while schedule and schedule[0][0] <= now:
                due.append(heapq.heappop(schedule)[1])
            if due and (may_run is None or may_run()):
                await self._poll_keys(due, schedule)
            elif due:  # another process polls: look again later
                reloaded_at = -RELOAD_INTERVAL
            wake = schedule[0][0] if schedule else now + RELOAD_INTERVAL
            await pause(stop, min(wake - self._clock.now(), RELOAD_INTERVAL - (self._clock.now() - reloaded_at)))

    async def _schedule(self) -> list[tuple[float, str]]:
        try:
            tracked = await self._state.list_tracked()
        except Exception as exc:  # the store is down, say: try again at the next reload
            log.warning("track_schedule_failed", error=exc.__class__.__name__)
            return []
        if self._metrics is not None:
            self._metrics.tracked_repositories.set(len(tracked))
        schedule = [(r.next_poll_at, r.key) for r in tracked]
        heapq.heapify(schedule)
        return schedule

    async def _poll_keys(self, keys: Sequence[str], schedule: list[tuple[float, str]]) -> None:
        async def one(key: str) -> None:
            record = await self._state.get_tracked(key)
            if record is None:  # no longer tracked
                return
            result = await self.poll(record)
            heapq.heappush(schedule, (result.repository.next_poll_at, key))

        try:
            await asyncio.gather(*(one(k) for k in keys))
        except Exception as exc:  # the store is down, say: the next reload picks the schedule up again
            log.warning("track_poll_failed", error=exc.__class__.__name__)

    def _count(self, *, changed: int, not_modified: bool, error: str | None) -> None:
        if self._metrics is None:
            return
        result = "error" if error else "not_modified" if not_modified else "changed" if changed else "unchanged"
        self._metrics.track_polls.labels(result).inc()


def _due_order(record: TrackedRepository) -> tuple[float, str]:
    return (record.next_poll_at, record.key)
