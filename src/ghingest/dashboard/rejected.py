"""The dashboard's Rejected page: the refused webhook requests (`ports.RejectionLog`), newest first, filtered by
reason and time, under a banner when requests signed with a secret ghingest does not have arrived in the last 24 h
(the most common first-day failure). Every signed-in user sees it: it holds no secret, no body and no signature,
and a viewer is often the one asking why nothing arrives. Not live: the change feed does not carry rejections, so
the page says when it was read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ghingest.app.runtime import runtime_of
from ghingest.core.rejections import AGGREGATED, MALFORMED, MAX_KEYS_PER_MINUTE, Reason
from ghingest.dashboard.errors import PageRoute
from ghingest.dashboard.security import CurrentUser
from ghingest.dashboard.templating import NavItem, renderer_of
from ghingest.ports.rejections import MAX_ROWS, RETENTION_SECONDS, RejectionQuery

router = APIRouter(include_in_schema=False, route_class=PageRoute)
NAV = NavItem("Rejected", "/rejected", ("/rejected",))
PAGE_SIZE = 50
DAY = 24 * 3600.0
WINDOWS = {"1h": 3600.0, "24h": DAY, "7d": 7 * DAY, "all": None}  # the page's time filter -> seconds back


@router.get("/rejected")
async def rejected_page(
    request: Request,
    _user: CurrentUser,
    reason: str = "",
    window: str = "24h",
    hook_id: str = "",
    cursor: str | None = None,
) -> Response:
    runtime = runtime_of(request)
    log = runtime.backend.rejections
    now = runtime.clock.now()
    # An unknown filter value shows the default, as the other pages do (the API answers 400 instead).
    chosen = Reason(reason) if reason in set(Reason) else None
    window = window if window in WINDOWS else "24h"
    span = WINDOWS[window]
    hook = hook_id if hook_id.isdigit() else None
    query = RejectionQuery(
        reasons=None if chosen is None else frozenset({chosen}),
        since=None if span is None else now - span,
        hook_id=hook,
    )
    page = await log.page(query, cursor=cursor or None, limit=PAGE_SIZE)
    context = {
        "page": page,
        "cursor": cursor or "",
        "filters": {"reason": chosen.value if chosen else "", "window": window, "hook_id": hook},
        "reasons": list(Reason),
        "windows": list(WINDOWS),
        "day": await log.summary(since=now - DAY),
        "read_at": now,
        "MALFORMED": MALFORMED,
        "AGGREGATED": AGGREGATED,
        "secret_setting": "GHINGEST_WEBHOOK_SECRETS",
        "keys_per_minute": MAX_KEYS_PER_MINUTE,
        "max_rows": MAX_ROWS,
        "retention_days": round(RETENTION_SECONDS / DAY),
    }
    return renderer_of(request).page(request, "rejected.html", context)
