"""The read API (JSON), reprocessing, and the health, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ghingest.app import audit
from ghingest.app.api_models import (
    DELIVERY_ID,
    DateTime,
    Delivery,
    ErrorDocument,
    Event,
    EventPage,
    EventStatus,
    Release,
    ReleasePage,
    examples,
)
from ghingest.app.auth import require_bearer, require_operator, require_reader
from ghingest.app.openapi import DocumentedRoute
from ghingest.app.runtime import Runtime, runtime_of
from ghingest.core.errors import StoreUnavailable
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.int64 import Int64
from ghingest.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ghingest.core.releases import ReleaseState
from ghingest.core.time import iso_utc, parse_iso, parse_time
from ghingest.ports import EventQuery, ReleaseQuery, ReprocessSelection

BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDocument, "description": "`invalid_request` (a filter) or `invalid_cursor`."}
}
INVALID_SELECTION: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorDocument,
        "description": "`invalid_request`: nothing is chosen, a time is no ISO-8601 time, or the body does not"
        " validate.",
    }
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDocument, "description": "`not_found`: no such resource."}
}

api = APIRouter(
    prefix="/api", dependencies=[Depends(require_reader)], tags=["releases and events"], route_class=DocumentedRoute
)
health = APIRouter(tags=["operations"], route_class=DocumentedRoute)


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
Repository = Annotated[str | None, Query(description="Repository full name.", examples=["octo-org/octo-repo"])]


def _iso_filter(name: str, value: str | None) -> str | None:
    """The time filter in UTC (`...Z`), the form the stored times are compared in."""
    if value is None:
        return None
    try:
        return iso_utc(parse_time(value))
    except ValueError:
        raise HTTPException(400, detail=f"{name} must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None


@api.get("/releases", response_model=ReleasePage, responses=BAD_REQUEST, summary="List releases, newest first")
async def list_releases(
    runtime: RuntimeDep,
    repo: Repository = None,
    state: Annotated[ReleaseState | None, Query(description="Only releases in this state.")] = None,
    prerelease: Annotated[bool | None, Query(description="Only prereleases (true) or only releases (false).")] = None,
    since: Annotated[DateTime | None, Query(description="Published (or, unpublished, created) at or after.")] = None,
    until: Annotated[DateTime | None, Query(description="Published (or, unpublished, created) before.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Search tag, name and notes.", examples=["zeppelin"])
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> ReleasePage:
    """Ordered by publication (or, for a release never published, creation) time; the same filters as the
    dashboard's releases page. `q` is not available on every deployment (400 where it is not)."""
    if q and not runtime.backend.reads.capabilities.search:
        raise HTTPException(
            400, detail=f"q: release search is not available on this deployment ({runtime.backend.name})"
        )
    query = ReleaseQuery(
        repository=repo,
        state=None if state is None else state.value,
        prerelease=prerelease,
        since=_iso_filter("since", since),
        until=_iso_filter("until", until),
        search=q or None,
        cursor=cursor,
        limit=limit,
    )
    page = await runtime.backend.reads.list_releases(query)
    return ReleasePage(items=[Release.of(view) for view in page.items], next_cursor=page.next_cursor)


@api.get("/releases/{release_id}", response_model=Release, responses=NOT_FOUND, summary="One release, with history")
async def get_release(runtime: RuntimeDep, release_id: Int64) -> Release:
    """The release as it stands now, with `history`: every change recorded, oldest first."""
    view = await runtime.backend.reads.get_release(release_id)
    if view is None:
        raise HTTPException(404, detail=f"no release {release_id}")
    return Release.of(view, with_history=True)


def epoch_filter(name: str, value: str | None) -> float | None:
    """A time parameter (`since`, `until`) as an epoch; an empty one is none; `HTTPException(400)` naming a bad one."""
    if not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise HTTPException(400, detail=f"{name} must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None


@api.get("/events", response_model=EventPage, responses=BAD_REQUEST, summary="List events, newest first")
async def list_events(
    runtime: RuntimeDep,
    event: Annotated[str | None, Query(description="X-GitHub-Event.", examples=["release"])] = None,
    action: Annotated[str | None, Query(description="The payload's `action`.", examples=["published"])] = None,
    repo: Repository = None,
    status: Annotated[EventStatus | None, Query(description="Processed, or processing failed.")] = None,
    sender: Annotated[
        str | None, Query(max_length=200, description="The payload's `sender.login`.", examples=["hubot"])
    ] = None,
    destination: Annotated[
        str | None, Query(max_length=200, description="Only events with a forward job to this destination.")
    ] = None,
    forward_status: Annotated[
        ForwardStatus | None,
        Query(description="Only events with a forward job in this status (to `destination`, if given)."),
    ] = None,
    since: Annotated[DateTime | None, Query(description="Received at or after.")] = None,
    until: Annotated[DateTime | None, Query(description="Received before.")] = None,
    delivery_id: Annotated[
        str | None, Query(max_length=200, description="X-GitHub-Delivery: that one event (or none).")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> EventPage:
    """Every processed (or failed) delivery as an event, newest first."""
    if (destination or forward_status) and not runtime.backend.reads.capabilities.event_forward_filters:
        raise HTTPException(
            400,
            detail=f"destination, forward_status: not available on this deployment ({runtime.backend.name})",
        )
    query = EventQuery(
        event=event,
        action=action,
        repository=repo,
        status=None if status is None else status.value,
        sender=sender or None,
        destination=destination or None,
        forward_status=forward_status,
        since=epoch_filter("since", since),
        until=epoch_filter("until", until),
        delivery_id=delivery_id or None,
        cursor=cursor,
        limit=limit,
    )
    page = await runtime.backend.reads.list_events(query)
    return EventPage(items=[Event.of(view) for view in page.items], next_cursor=page.next_cursor)


@api.get("/deliveries/{delivery_id}", response_model=Delivery, responses=NOT_FOUND, summary="One recorded delivery")
async def get_delivery(
    runtime: RuntimeDep,
    delivery_id: str,
    raw: Annotated[bool, Query(description="Include the exact body.")] = False,
) -> Delivery:
    """A delivery as recorded (its headers, which secret verified it, other hooks' copies of it) and its
    processing; with `raw`, the exact body."""
    view = await runtime.backend.reads.get_delivery(delivery_id)
    if view is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id!r}")
    return Delivery.of(view, raw=raw)


@examples({"since": "2024-05-01T00:00:00Z", "failed_only": True}, {"delivery_id": DELIVERY_ID})
class ReprocessRequest(BaseModel):
    """What to reprocess: at least one of the three (they combine: all must hold)."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: str | None = Field(default=None, description="One delivery id.")
    since: DateTime | None = Field(default=None, description="Every delivery received at or after.")
    failed_only: bool = Field(default=False, description="Only deliveries whose processing failed.")


@examples({"count": 3})
class ReprocessResult(BaseModel):
    count: int = Field(description="Deliveries put back to be processed again.")


@api.post(
    "/reprocess",
    response_model=ReprocessResult,
    responses=INVALID_SELECTION,
    dependencies=[Depends(require_operator), Depends(require_bearer)],
    summary="Process recorded deliveries again",
)
async def reprocess_deliveries(request: Request, runtime: RuntimeDep, body: ReprocessRequest) -> ReprocessResult:
    """Rebuild events and releases from the stored raw deliveries (after a parser fix, say), as `ghingest
    reprocess` and the dashboard's Reprocess button do: the selected deliveries are received again and any worker
    processes them; forwarding is not repeated (see `replayForwards`)."""
    try:
        since = None if body.since is None else parse_iso(body.since)
    except ValueError:
        raise HTTPException(400, detail="since must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None
    selection = ReprocessSelection(delivery_id=body.delivery_id or None, since=since, failed_only=body.failed_only)
    if selection.delivery_id is None and selection.since is None and not selection.failed_only:
        raise HTTPException(400, detail="choose what to reprocess: a delivery_id, since or failed_only")
    done = await audit.reprocess(runtime, audit.actor_of(request, request.state.principal.name), selection)
    return ReprocessResult(count=int(done.result["queued"]))


@health.get("/healthz", summary="Liveness: the process answers")
async def get_liveness() -> dict[str, str]:
    """No authentication. Answers `{"status": "ok"}` while the process serves requests."""
    return {"status": "ok"}


READY_TIMEOUT = 3.0


@health.get(
    "/readyz",
    summary="Readiness: the process can do its job (the store commits; the inbox takes appends, the read side answers)",
    responses={
        503: {
            "model": ErrorDocument,
            "description": "The store, the inbox or the read side does not answer, or the webhook source allow-list"
            " is on and GitHub's list was never loaded.",
        }
    },
)
async def get_readiness(request: Request, runtime: RuntimeDep) -> Response:
    """No authentication. `{"status": "ready"}`, or 503 `not_ready` with the reason."""
    allowlist = runtime.hook_allowlist
    if allowlist is not None and (reason := allowlist.not_ready()) is not None:
        return JSONResponse({"error": "not_ready", "detail": reason}, status_code=503)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await runtime.backend.ready(**request.app.state.readiness)
    except StoreUnavailable as exc:
        return JSONResponse({"error": "not_ready", "detail": str(exc)}, status_code=503)
    except Exception as exc:
        detail = f"the store does not answer ({exc.__class__.__name__})"
        return JSONResponse({"error": "not_ready", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ready"})


@health.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def get_metrics(runtime: RuntimeDep) -> Response:
    """No authentication: the Prometheus text format. Bind to a private interface or filter at the proxy if the
    numbers are not for everyone."""
    # The gauges read the backend; one that cannot answer now keeps its last value (the scrape still succeeds:
    # a bus outage must not hide the counters that show it).
    with contextlib.suppress(StoreUnavailable):
        runtime.metrics.inbox_depth.set(await runtime.backend.inbox.depth())
    with contextlib.suppress(StoreUnavailable):
        known = set()
        for stats in await runtime.backend.forward_log.stats():
            known.add(stats.destination)
            runtime.metrics.forward_queue_depth.labels(stats.destination).set(stats.queued)
            runtime.metrics.forward_dead_letters.labels(stats.destination).set(stats.dead)
        paused = {p.destination for p in await runtime.backend.forwards.paused()}
        for name in known | paused:
            runtime.metrics.forward_paused.labels(name).set(1 if name in paused else 0)
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
