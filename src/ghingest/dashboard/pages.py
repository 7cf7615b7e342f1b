"""The dashboard's pages: releases (landing), release detail, repository, events, delivery; and reprocessing.

Every list is one keyset-paginated, indexed store query per view (never OFFSET, never COUNT over a table).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ghingest.app import audit
from ghingest.app.runtime import runtime_of
from ghingest.core import search
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.github_events import ACTIONS, EVENTS
from ghingest.core.int64 import Int64
from ghingest.core.pagination import InvalidCursor
from ghingest.core.releases import ReleaseState
from ghingest.dashboard import charts
from ghingest.dashboard.errors import PageRoute, bad_request, error_page
from ghingest.dashboard.filters import day_filter, moment_filter
from ghingest.dashboard.flash import flash_target
from ghingest.dashboard.forwarding import forwards_context
from ghingest.dashboard.live import live_context
from ghingest.dashboard.notes import notes_of
from ghingest.dashboard.security import CurrentUser, OperatorPost, safe_next
from ghingest.dashboard.templating import pretty_payload, renderer_of
from ghingest.ports import EventQuery, ReleaseQuery, ReprocessSelection

router = APIRouter(include_in_schema=False, route_class=PageRoute)
PAGE_SIZE = 50
MAX_RAW_PAYLOADS = 20
CHART_TTL_SECONDS = 15.0
EVENT_NAMES = sorted(EVENTS)  # GitHub's published vocabulary (core.github_events, generated)
FORWARD_STATUSES = tuple(s.value for s in ForwardStatus)


def action_names(event: str) -> list[str]:
    """The actions the action picker offers: the selected event's, else every documented action."""
    if event in ACTIONS:
        return list(ACTIONS[event])
    return sorted({action for actions in ACTIONS.values() for action in actions})


def _text(value: str | None, limit: int = 200) -> str:
    return (value or "").strip()[:limit]


@dataclass
class ChartCache:
    """The all-repositories chart, kept a few seconds: a busy landing page must not recount every view."""

    at: float = 0.0
    chart: charts.Chart | None = None


async def _chart(request: Request, repository: str | None) -> charts.Chart | None:
    cache: ChartCache = request.app.state.dashboard_chart_cache
    if repository is None and cache.chart is not None and time.monotonic() - cache.at < CHART_TTL_SECONDS:
        return cache.chart
    reads = runtime_of(request).backend.reads
    first = charts.window_start(await reads.newest_release_at(repository=repository))
    chart = None
    if first is not None:
        per_day = await reads.count_releases_by_day(since=first.isoformat(), repository=repository)
        chart = charts.weekly(per_day, first)
    if repository is None:
        cache.at, cache.chart = time.monotonic(), chart
    return chart


def _bad_cursor(request: Request) -> Response:
    return bad_request(request, "That page link is not valid.")


def _day_after(day: date | None) -> str | None:
    """The exclusive upper bound for releases up to and including `day` (none after the calendar's last day)."""
    return None if day is None or day == date.max else (day + timedelta(days=1)).isoformat()


@router.get("/")
async def releases_page(
    request: Request,
    _user: CurrentUser,
    repo: str | None = None,
    state: str | None = None,
    pre: str | None = None,
    since: str | None = None,
    until: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
) -> Response:
    errors: list[str] = []
    reads = runtime_of(request).backend.reads
    filters = {
        "repo": _text(repo),
        "state": state if state in {s.value for s in ReleaseState} else "",
        "pre": pre if pre in ("yes", "no") else "",
        "since": _text(since, 10),
        "until": _text(until, 10),
        "q": _text(q) if reads.capabilities.search else "",  # no search box where the store cannot search
    }
    if q and not reads.capabilities.search:
        errors.append("Search is not available on this deployment: its store has no full-text index.")
    since_day = day_filter(filters["since"], errors, "From")
    until_day = day_filter(filters["until"], errors, "Until")
    query = ReleaseQuery(
        repository=filters["repo"] or None,
        state=filters["state"] or None,
        prerelease={"yes": True, "no": False}.get(filters["pre"]),
        since=since_day.isoformat() if since_day else None,
        until=_day_after(until_day),
        search=filters["q"] or None,
        cursor=cursor or None,
        limit=PAGE_SIZE,
    )
    try:
        page = await reads.list_releases(query)
    except InvalidCursor:
        return _bad_cursor(request)
    context = {
        "can_search": reads.capabilities.search,
        "filters": filters,
        "filtered": any(filters.values()),
        "errors": errors,
        "page": page,
        "hits": {v.record.release_id: search.explain_release(v.record.content, filters["q"]) for v in page.items}
        if filters["q"]
        else {},
        "cursor": cursor or "",
        "states": [s.value for s in ReleaseState],
        "chart": await _chart(request, None) if not cursor else None,
        **await live_context(request, follows=not cursor),
    }
    return renderer_of(request).page(request, "releases.html", context)


@router.get("/releases/{release_id}")
async def release_page(request: Request, _user: CurrentUser, release_id: Int64) -> Response:
    reads = runtime_of(request).backend.reads
    view = await reads.get_release(release_id)
    if view is None:
        return error_page(request, "Not found", f"No release {release_id}.", status_code=404)
    deliveries = {}
    for entry in view.record.history[-MAX_RAW_PAYLOADS:]:
        delivery = await reads.get_delivery(entry.delivery_id)
        if delivery is not None:
            deliveries[entry.delivery_id] = pretty_payload(delivery.content_kind, delivery.body)
    notes = await notes_of(request).html(release_id, view.record.content.body)
    context = {"release": view, "notes": notes, "payloads": deliveries, **await live_context(request)}
    return renderer_of(request).page(request, "release.html", context)


@router.get("/repos/{owner}/{name}")
async def repository_page(
    request: Request, _user: CurrentUser, owner: str, name: str, cursor: str | None = None
) -> Response:
    repository = f"{owner}/{name}"
    query = ReleaseQuery(repository=repository, cursor=cursor or None, limit=PAGE_SIZE)
    try:
        page = await runtime_of(request).backend.reads.list_releases(query)
    except InvalidCursor:
        return _bad_cursor(request)
    context = {
        "repository": repository,
        "page": page,
        "cursor": cursor or "",
        "chart": await _chart(request, repository) if not cursor else None,
        **await live_context(request, follows=not cursor),
    }
    return renderer_of(request).page(request, "repository.html", context)


@router.get("/events")
async def events_page(
    request: Request,
    _user: CurrentUser,
    event: str | None = None,
    action: str | None = None,
    repo: str | None = None,
    status: str | None = None,
    sender: str | None = None,
    destination: str | None = None,
    forward_status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    delivery_id: str | None = None,
    cursor: str | None = None,
) -> Response:
    runtime = runtime_of(request)
    reads = runtime.backend.reads
    forward_filters = reads.capabilities.event_forward_filters
    errors: list[str] = []
    filters = {
        "event": _text(event, 100),
        "action": _text(action, 100),
        "repo": _text(repo),
        "status": status if status in ("processed", "failed") else "",
        "sender": _text(sender, 100),
        "destination": _text(destination, 200) if forward_filters else "",
        "forward_status": forward_status if forward_filters and forward_status in FORWARD_STATUSES else "",
        "since": _text(since, 40),
        "until": _text(until, 40),
        "delivery_id": _text(delivery_id, 200),
    }
    if (destination or forward_status) and not forward_filters:
        errors.append("Filtering by forwards is not available on this deployment: its store has no index for it.")
    query = EventQuery(
        event=filters["event"] or None,
        action=filters["action"] or None,
        repository=filters["repo"] or None,
        status=filters["status"] or None,
        sender=filters["sender"] or None,
        destination=filters["destination"] or None,
        forward_status=ForwardStatus(filters["forward_status"]) if filters["forward_status"] else None,
        since=moment_filter(filters["since"], errors, "From"),
        until=moment_filter(filters["until"], errors, "Until"),
        delivery_id=filters["delivery_id"] or None,
        cursor=cursor or None,
        limit=PAGE_SIZE,
    )
    try:
        page = await reads.list_events(query)
    except InvalidCursor:
        return _bad_cursor(request)
    if query.delivery_id is not None and not any(v for k, v in filters.items() if k != "delivery_id"):
        if page.items:  # a delivery id alone: that delivery's page
            return RedirectResponse(f"/deliveries/{quote(query.delivery_id, safe='')}", status_code=303)
        errors.append("No event has that delivery id.")
    context = {
        "filters": filters,
        "filtered": any(filters.values()),
        "errors": errors,
        "page": page,
        "cursor": cursor or "",
        "event_names": EVENT_NAMES,
        "action_names": action_names(filters["event"]),
        "forward_filters": forward_filters,
        "forward_statuses": FORWARD_STATUSES,
        "destinations": sorted(runtime.route_table().destinations),
        **await live_context(request, follows=not cursor),
    }
    return renderer_of(request).page(request, "events.html", context)


@router.get("/deliveries/{delivery_id}")
async def delivery_page(request: Request, _user: CurrentUser, delivery_id: str) -> Response:
    view = await runtime_of(request).backend.reads.get_delivery(delivery_id)
    if view is None:
        return error_page(request, "Not found", "No such delivery.", status_code=404)
    context = {
        "payload": pretty_payload(view.content_kind, view.body),
        "release_id": view.release_id,
        **await forwards_context(request, view),
        **await live_context(request),
    }
    return renderer_of(request).page(request, "delivery.html", context)


@router.post("/deliveries/{delivery_id}/reprocess")
async def reprocess(request: Request, user: OperatorPost, delivery_id: str) -> Response:
    form = await request.form()
    back = form.get("next")
    # The worker (in this process or another) picks the delivery up at its next poll.
    selection = ReprocessSelection(delivery_id=delivery_id)
    done = await audit.reprocess(runtime_of(request), audit.actor_of(request, user.name), selection)
    target = safe_next(back if isinstance(back, str) else None)
    if target == "/":
        target = f"/deliveries/{quote(delivery_id, safe='')}"
    return RedirectResponse(flash_target(request, target, user, done), status_code=303)


@router.get("/ui/repositories")
async def repositories(request: Request, _user: CurrentUser, q: str = "") -> Response:
    names = await runtime_of(request).backend.reads.list_repositories(_text(q), limit=20)
    return JSONResponse(list(names), headers={"Cache-Control": "no-store"})
