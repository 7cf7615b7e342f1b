"""The dashboard's GitHub page: reconciliation with GitHub's deliveries API (each hook's last run, the gaps found
and what became of them) and the repositories whose releases are polled."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ghingest.app.runtime import runtime_of
from ghingest.core.reconcile import GapState
from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.security import CurrentUser
from ghingest.dashboard.templating import NavItem, renderer_of

router = APIRouter(include_in_schema=False, route_class=PageRoute)
NAV = NavItem("GitHub", "/github", ("/github",))
PAGE_SIZE = 50
STATE_VIEWS = {  # the page's filter -> the gap states it shows
    "open": frozenset({GapState.MISSING, GapState.REQUESTED}),
    "unresolved": frozenset({GapState.GAVE_UP, GapState.REFUSED, GapState.EXPIRED}),
    "arrived": frozenset({GapState.ARRIVED}),
    "all": None,
}


@router.get("/github")
async def github_page(request: Request, _user: CurrentUser, gaps: str = "open", cursor: str | None = None) -> Response:
    runtime = runtime_of(request)
    state = runtime.backend.github
    view = gaps if gaps in STATE_VIEWS else "open"
    page = await state.list_gaps(states=STATE_VIEWS[view], cursor=cursor or None, limit=PAGE_SIZE)
    counts = await state.gap_counts()
    settings = runtime.settings
    context = {
        "scans": await state.list_scans(),
        "configured_hooks": settings.reconcile_hooks,
        "reconcile_interval": settings.reconcile_interval,
        "counts": {s.value: n for s, n in counts.items()},
        "page": page,
        "cursor": cursor or "",
        "filters": {"gaps": view},
        "views": list(STATE_VIEWS),
        "tracked": await state.list_tracked(),
        "track_interval": settings.track_interval,
    }
    return renderer_of(request).page(request, "github.html", context)
