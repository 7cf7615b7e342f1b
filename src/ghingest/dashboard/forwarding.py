"""The dashboard's forwarding pages: destinations with their health, counters and controls (pause, resume, send a
test delivery), dead letters with bulk retry.

A delivery's forwards and attempts are shown on its page (`_forwards.html`, included by `delivery.html`, and
alone at `/deliveries/{id}/forwards`, which the page fetches when a forward of the delivery changes). The
destinations and the first page of dead letters follow the change feed's forwards (`dashboard.js`).
Retrying, pausing, resuming and testing are state-changing POSTs: signed in, same origin, the session's CSRF
token, and the operator role (`OperatorPost`); each redirects back to the page, which says what was done.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ghingest.app import audit, destinations, operations
from ghingest.app.destinations import origin_of
from ghingest.app.runtime import runtime_of
from ghingest.core.int64 import Int64
from ghingest.dashboard.errors import PageRoute, error_page
from ghingest.dashboard.flash import flash_target
from ghingest.dashboard.live import live_context
from ghingest.dashboard.security import CurrentUser, OperatorPost
from ghingest.dashboard.templating import NavItem, renderer_of
from ghingest.ports import DeliveryView, ReplaySelection
from ghingest.ports.audit import FORWARD_AGAIN, RETRY

router = APIRouter(include_in_schema=False, route_class=PageRoute)
NAV = NavItem("Forwarding", "/forwarding", ("/forwarding",))
PAGE_SIZE = 50


async def forwards_context(request: Request, delivery: DeliveryView) -> dict[str, Any]:
    """What `_forwards.html` shows of a delivery: its forwards with their attempts and the destinations it can be
    forwarded again to."""
    runtime = runtime_of(request)
    return {
        "delivery": delivery,
        "forwards": list(await runtime.backend.forward_log.forwards_of(delivery.delivery_id)),
        "forward_destinations": sorted(runtime.route_table().destinations),
    }


@router.get("/deliveries/{delivery_id}/forwards")
async def forwards_section(request: Request, _user: CurrentUser, delivery_id: str) -> Response:
    """The forwards section of a delivery's page alone (the page fetches it when the delivery's forwards change)."""
    view = await runtime_of(request).backend.reads.get_delivery(delivery_id)
    if view is None:
        return error_page(request, "Not found", "No such delivery.", status_code=404)
    return renderer_of(request).page(request, "_forwards.html", await forwards_context(request, view))


@router.get("/forwarding")
async def destinations_page(request: Request, _user: CurrentUser) -> Response:
    runtime = runtime_of(request)
    overview = await destinations.overview(runtime)
    routes = runtime.routes
    names = {d.name for d in overview}  # a notice names a destination there is, never any text of the URL's
    done = {action: request.query_params.get(action) for action in ("paused", "resumed", "tested")}
    done = {action: name if name in names else None for action, name in done.items()}
    tested = next((d.test for d in overview if d.name == done["tested"]), None)
    context = {
        "destinations": overview,
        "origin_of": origin_of,
        "done": done,
        "tested": tested,
        "routes": runtime.route_table().routes,
        "routes_file": str(routes.path) if routes is not None and routes.path is not None else None,
        "routes_error": routes.last_error if routes is not None else None,
        **await live_context(request),
    }
    return renderer_of(request).page(request, "forwarding.html", context)


@router.get("/forwarding/dead-letters")
async def dead_letters_page(
    request: Request, _user: CurrentUser, destination: str | None = None, before: Int64 | None = None
) -> Response:
    runtime = runtime_of(request)
    views = await runtime.backend.forward_log.dead_letters(
        destination=destination or None, before_id=before, limit=PAGE_SIZE + 1
    )
    items = list(views[:PAGE_SIZE])
    context = {
        "items": items,
        "destination": destination or "",
        "destinations": sorted({s.destination for s in await runtime.backend.forward_log.stats()}),
        "next_before": items[-1].id if len(views) > PAGE_SIZE else None,
        "none_selected": request.query_params.get("selected") == "none",
        **await live_context(request, follows=before is None),
    }
    return renderer_of(request).page(request, "dead_letters.html", context)


def _dead_letters_url(destination: str | None, **params: str) -> str:
    query = urlencode({**({"destination": destination} if destination else {}), **params})
    return "/forwarding/dead-letters" + (f"?{query}" if query else "")


@router.post("/forwarding/dead-letters/retry")
async def retry_dead_letters(
    request: Request,
    user: OperatorPost,
    job_id: Annotated[list[Int64] | None, Form()] = None,
    scope: Annotated[str, Form()] = "selected",
    destination: Annotated[str | None, Form()] = None,
    confirm: Annotated[str | None, Form()] = None,
) -> Response:
    """Replay the selected dead letters to their destinations; or, once confirmed (`confirm=1`: the confirmation
    page's form, so that it needs no script), every dead letter (of one destination, or all)."""
    runtime = runtime_of(request)
    destination = destination or None
    if scope == "all":
        selection = ReplaySelection(destination=destination, dead_only=True)
        if confirm != "1":
            count = await operations.replay(runtime.backend, selection, dry_run=True)
            context = {"destination": destination or "", "count": count, "back": _dead_letters_url(destination)}
            return renderer_of(request).page(request, "dead_letters_confirm.html", context)
    else:
        if not job_id:
            return RedirectResponse(_dead_letters_url(destination, selected="none"), status_code=303)
        selection = ReplaySelection(dead_only=True, job_ids=tuple(job_id))
    done = await audit.replay(runtime, audit.actor_of(request, user.name), selection, action=RETRY)
    back = _dead_letters_url(destination)
    return RedirectResponse(flash_target(request, back, user, done), status_code=303)


@router.post("/deliveries/{delivery_id}/forward-again")
async def forward_again(
    request: Request, user: OperatorPost, delivery_id: str, to: Annotated[str | None, Form()] = None
) -> Response:
    """Replay one delivery to the destinations it went to, or to a chosen configured destination."""
    runtime = runtime_of(request)
    target = to or None
    if target is not None and target not in runtime.route_table().destinations:
        target = None
    page = f"/deliveries/{quote(delivery_id, safe='')}"
    if await runtime.backend.reads.get_delivery(delivery_id) is None:
        return error_page(request, "Not found", "No such delivery.", status_code=404)
    selection = ReplaySelection(delivery_id=delivery_id, to=target)
    done = await audit.replay(runtime, audit.actor_of(request, user.name), selection, action=FORWARD_AGAIN)
    return RedirectResponse(flash_target(request, page, user, done), status_code=303)


def _back(action: str, name: str) -> RedirectResponse:
    return RedirectResponse(f"/forwarding?{action}={quote(name, safe='')}#destination-{quote(name)}", status_code=303)


@router.post("/forwarding/destinations/{name}/pause")
async def pause_destination(request: Request, user: OperatorPost, name: str) -> Response:
    """Pause a destination: its forwards wait until it is resumed."""
    await destinations.pause_destination(runtime_of(request), name, actor=audit.actor_of(request, user.name))
    return _back("paused", name)


@router.post("/forwarding/destinations/{name}/resume")
async def resume_destination(request: Request, user: OperatorPost, name: str) -> Response:
    """Resume a paused destination."""
    await destinations.resume_destination(runtime_of(request), name, actor=audit.actor_of(request, user.name))
    return _back("resumed", name)


@router.post("/forwarding/destinations/{name}/test")
async def test_destination(request: Request, user: OperatorPost, name: str) -> Response:
    """Send a signed ping to a configured destination; the page then shows what it answered."""
    await destinations.send_test_delivery(runtime_of(request), name, actor=audit.actor_of(request, user.name))
    return _back("tested", name)
