"""The overview (`/overview`): the operator's landing page. A row of figures for the last 24 hours, each linking to
the list behind it, and deliveries per hour by outcome; live.

Every figure is one bounded, indexed read (hourly counts from index ranges, the inbox's oldest waiting delivery by
one probe, per-destination queue counts, dead letters by their time). A process computes them at most once per
`TTL_SECONDS`, however many overviews are open and however busy the change feed: a page rendered from figures
older than the feed's newest change says so (`data-live-behind`), and the page asks again after the throttle.

`/start` is where a sign-in without a `next` lands: operators on the overview, viewers on the releases (`/` stays
the releases page for everyone, so bookmarks of it keep showing what they showed).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ghingest.app.runtime import Runtime, runtime_of
from ghingest.core.rejections import Reason
from ghingest.dashboard import charts
from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.security import CurrentUser
from ghingest.dashboard.templating import renderer_of

router = APIRouter(include_in_schema=False, route_class=PageRoute)
LANDING = "/start"
WINDOW_HOURS = 24
TTL_SECONDS = 3.0
LIVE_MIN_MS = round(TTL_SECONDS * 1000)  # the page's refresh throttle: never sooner than the figures can change


@dataclass(frozen=True, slots=True)
class Stat:
    """One figure of the stat row: `value` as shown, `href` the list behind it (None: there is none)."""

    key: str
    label: str
    value: str
    href: str | None = None
    hint: str | None = None
    alert: bool = False  # worth a look (failures, dead letters, a long lag)


@dataclass(frozen=True, slots=True)
class Overview:
    stats: tuple[Stat, ...]
    chart: charts.HourlyChart | None  # None: the store cannot count by hour (`ReadCapabilities.activity`)
    since: float  # the window's start (an hour's start, 23 h before the current hour's)
    cursor: str  # the change feed's position the figures were computed at


@dataclass
class OverviewCache:
    at: float = 0.0
    overview: Overview | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def since_param(epoch: float) -> str:
    """A time as the event log's since/until filters take it (and its datetime-local inputs show it), in UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M")


def hour_label(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%a %H:00 UTC")


async def compute(runtime: Runtime, now: float) -> Overview:
    backend = runtime.backend
    cursor = await backend.feed.latest()
    since = charts.hour_start(now) - (WINDOW_HOURS - 1) * charts.HOUR
    window = since_param(since)
    stats: list[Stat] = []
    chart = None
    if backend.reads.capabilities.activity:
        chart = charts.hourly(await backend.reads.deliveries_per_hour(since=since), since, WINDOW_HOURS)
        failed = chart.totals["failed"]
        stats += [
            Stat("received", "Deliveries received", f"{chart.totals['received']:,}", f"/events?since={window}"),
            Stat(
                "failed",
                "Processing failures",
                f"{failed:,}",
                f"/events?status=failed&since={window}",
                alert=failed > 0,
            ),
        ]
    rejected = await backend.rejections.summary(since=since)
    wrong_secret = rejected.by_reason.get(Reason.WRONG_SECRET, 0)
    stats.append(
        Stat(
            "rejected",
            "Rejected requests",
            f"{rejected.total:,}",
            "/rejected",
            hint=f"{wrong_secret:,} signed with a wrong secret" if wrong_secret else "refused webhook requests",
            alert=wrong_secret > 0,
        )
    )
    dead = await backend.forward_log.dead_lettered_since(since)
    stats.append(Stat("dead", "Forwards dead-lettered", f"{dead:,}", "/forwarding/dead-letters", alert=dead > 0))
    depth = await backend.inbox.depth()
    stats.append(Stat("inbox", "Inbox depth", f"{depth:,}", hint="deliveries waiting to be processed or retried"))
    if backend.inbox.capabilities.oldest_waiting:
        oldest = await backend.inbox.oldest_waiting_at()
        lag = 0.0 if oldest is None else max(0.0, now - oldest)
        stats.append(
            Stat(
                "lag",
                "Processing lag",
                "none waiting" if oldest is None else _minutes(lag),
                hint="how long the oldest delivery waiting to be processed has waited",
                alert=lag >= 60,
            )
        )
    queued = sum(s.queued for s in await backend.forward_log.stats())
    stats.append(Stat("forward-queue", "Forward queue depth", f"{queued:,}", "/forwarding"))
    return Overview(tuple(stats), chart, since, cursor)


async def overview_of(request: Request) -> Overview:
    """The figures, computed at most once per `TTL_SECONDS` by this process (concurrent views wait for one)."""
    cache: OverviewCache = request.app.state.dashboard_overview_cache
    async with cache.lock:
        if cache.overview is None or time.monotonic() - cache.at >= TTL_SECONDS:
            runtime = runtime_of(request)
            cache.overview = await compute(runtime, runtime.clock.now())
            cache.at = time.monotonic()
        return cache.overview


@router.get("/overview")
async def overview_page(request: Request, _user: CurrentUser) -> Response:
    overview = await overview_of(request)
    latest = await runtime_of(request).backend.feed.latest()
    context = {
        "overview": overview,
        "behind": latest != overview.cursor,
        "live_seq": latest,
        "live_min_ms": LIVE_MIN_MS,
        "window_hours": WINDOW_HOURS,
        "hour_label": hour_label,
    }
    return renderer_of(request).page(request, "overview.html", context)


@router.get(LANDING)
async def landing(request: Request, user: CurrentUser) -> Response:
    return RedirectResponse("/overview" if user.operator else "/", status_code=303)
