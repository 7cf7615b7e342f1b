"""The read API (JSON) and the health, readiness and metrics endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from ghingest.app.api_models import Delivery, ErrorDocument, Event, EventPage, Release, ReleasePage
from ghingest.app.auth import require_reader
from ghingest.app.runtime import Runtime, runtime_of
from ghingest.core.errors import StoreUnavailable
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.int64 import Int64
from ghingest.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ghingest.core.time import iso_utc, parse_iso, parse_time
from ghingest.ports import EventQuery, ReleaseQuery

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorDocument, "description": "Missing or invalid bearer token."}
}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorDocument, "description": "Invalid filter or cursor."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorDocument, "description": "No such resource."}}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorDocument, "description": "The operator role is required (or a session's CSRF token)."}
}

api = APIRouter(prefix="/api", dependencies=[Depends(require_reader)], responses=UNAUTHORIZED, tags=["read API"])
health = APIRouter(tags=["operations"])


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


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
    repo: Annotated[str | None, Query(description="Repository full name, e.g. octo-org/octo-repo.")] = None,
    state: Literal["draft", "published", "unpublished", "deleted"] | None = None,
    prerelease: bool | None = None,
    since: Annotated[str | None, Query(description="Published (or created) at or after, ISO-8601.")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Search tag, name and notes.")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> ReleasePage:
    if q and not runtime.backend.reads.capabilities.search:
        raise HTTPException(
            400, detail=f"q: release search is not available on this deployment ({runtime.backend.name})"
        )
    query = ReleaseQuery(
        repository=repo,
        state=state,
        prerelease=prerelease,
        since=_iso_filter("since", since),
        search=q or None,
        cursor=cursor,
        limit=limit,
    )
    page = await runtime.backend.reads.list_releases(query)
    return ReleasePage(items=[Release.of(view) for view in page.items], next_cursor=page.next_cursor)


@api.get("/releases/{release_id}", response_model=Release, responses=NOT_FOUND, summary="One release, with history")
async def get_release(runtime: RuntimeDep, release_id: Int64) -> Release:
    view = await runtime.backend.reads.get_release(release_id)
    if view is None:
        raise HTTPException(404, detail=f"no release {release_id}")
    return Release.of(view, with_history=True)


def _epoch_filter(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise HTTPException(400, detail=f"{name} must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None


@api.get("/events", response_model=EventPage, responses=BAD_REQUEST, summary="List events, newest first")
async def list_events(
    runtime: RuntimeDep,
    event: Annotated[str | None, Query(description="X-GitHub-Event, e.g. release.")] = None,
    action: Annotated[str | None, Query(description="The payload's action, e.g. published.")] = None,
    repo: Annotated[str | None, Query(description="Repository full name, e.g. octo-org/octo-repo.")] = None,
    status: Annotated[
        Literal["processed", "failed"] | None, Query(description="What processing made of the delivery.")
    ] = None,
    sender: Annotated[str | None, Query(max_length=200, description="The payload's sender.login.")] = None,
    destination: Annotated[
        str | None, Query(max_length=200, description="Only events with a forward job to this destination.")
    ] = None,
    forward_status: Annotated[
        ForwardStatus | None,
        Query(description="Only events with a forward job in this status (to `destination`, if given)."),
    ] = None,
    since: Annotated[str | None, Query(description="Received at or after, ISO-8601 date-time.")] = None,
    until: Annotated[str | None, Query(description="Received before, ISO-8601 date-time.")] = None,
    delivery_id: Annotated[
        str | None, Query(max_length=200, description="X-GitHub-Delivery: that one event (or none).")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> EventPage:
    if (destination or forward_status) and not runtime.backend.reads.capabilities.event_forward_filters:
        raise HTTPException(
            400,
            detail=f"destination, forward_status: not available on this deployment ({runtime.backend.name})",
        )
    query = EventQuery(
        event=event,
        action=action,
        repository=repo,
        status=status,
        sender=sender or None,
        destination=destination or None,
        forward_status=forward_status,
        since=_epoch_filter("since", since),
        until=_epoch_filter("until", until),
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
    view = await runtime.backend.reads.get_delivery(delivery_id)
    if view is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id!r}")
    return Delivery.of(view, raw=raw)


@health.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
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
async def readyz(request: Request, runtime: RuntimeDep) -> Response:
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
async def metrics(runtime: RuntimeDep) -> Response:
    # The gauges read the backend; one that cannot answer now keeps its last value (the scrape still succeeds:
    # a bus outage must not hide the counters that show it).
    with contextlib.suppress(StoreUnavailable):
        runtime.metrics.inbox_depth.set(await runtime.backend.inbox.depth())
    with contextlib.suppress(StoreUnavailable):
        for stats in await runtime.backend.forward_log.stats():
            runtime.metrics.forward_queue_depth.labels(stats.destination).set(stats.queued)
            runtime.metrics.forward_dead_letters.labels(stats.destination).set(stats.dead)
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
