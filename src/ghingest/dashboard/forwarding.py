"""The dashboard's forwarding pages: destinations with their counters, dead letters with bulk retry.

A delivery's forwards and attempts are shown on its page (`_forwards.html`, included by `delivery.html`).
Retrying is a state-changing POST: signed in, same origin, the session's CSRF token, and the operator role
(`OperatorPost`).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from ghingest.app import audit, operations
from ghingest.app.forward_api import destination_states
from ghingest.app.runtime import runtime_of
from ghingest.core.int64 import Int64
from ghingest.dashboard.errors import PageRoute, error_page
from ghingest.dashboard.flash import flash_target
from ghingest.dashboard.security import CurrentUser, OperatorPost
from ghingest.dashboard.templating import NavItem, renderer_of
from ghingest.ports import ForwardView, ReplaySelection
from ghingest.ports.audit import FORWARD_AGAIN, RETRY

router = APIRouter(include_in_schema=False, route_class=PageRoute)
NAV = NavItem("Forwarding", "/forwarding", ("/forwarding",))
PAGE_SIZE = 50


async def forwards_of(request: Request, delivery_id: str) -> list[ForwardView]:
    """A delivery's forwards with their attempts, for its page."""
    return list(await runtime_of(request).backend.forward_log.forwards_of(delivery_id))


@router.get("/forwarding")
async def destinations_page(request: Request, _user: CurrentUser) -> Response:
    runtime = runtime_of(request)
    states = destination_states(runtime, list(await runtime.backend.forward_log.stats()))
    routes = runtime.routes
    context = {
        "destinations": states,
        "routes": runtime.route_table().routes,
        "routes_file": str(routes.path) if routes is not None and routes.path is not None else None,
        "routes_error": routes.last_error if routes is not None else None,
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
