"""The audit page: who started which operator action or signed in, when, from where, on what, and what came of it
(`ghingest.ports.AuditLog`), newest first, in keyset pages, filtered by action, actor, days and outcome. Operators
only: it names people and their addresses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ghingest.app.runtime import runtime_of
from ghingest.core.pagination import InvalidCursor
from ghingest.dashboard.errors import PageRoute, bad_request
from ghingest.dashboard.filters import day_filter
from ghingest.dashboard.security import OperatorPage
from ghingest.dashboard.templating import NavItem, renderer_of
from ghingest.ports import AuditQuery
from ghingest.ports.audit import ACTIONS

router = APIRouter(include_in_schema=False, route_class=PageRoute)
NAV = NavItem("Audit", "/audit", ("/audit",), operator_only=True)
PAGE_SIZE = 50


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, datetime.min.time(), UTC)


@router.get("/audit")
async def audit_page(
    request: Request,
    _user: OperatorPage,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    until: str | None = None,
    outcome: str | None = None,
    cursor: str | None = None,
) -> Response:
    errors: list[str] = []
    filters = {
        "action": (action or "").strip()[:64],
        "actor": (actor or "").strip()[:256],
        "since": (since or "").strip()[:10],
        "until": (until or "").strip()[:10],
        "outcome": outcome if outcome in ("ok", "failed") else "",
    }
    first = _midnight(day_filter(filters["since"], errors, "From"))
    last = _midnight(day_filter(filters["until"], errors, "Until"))
    query = AuditQuery(
        action=filters["action"] or None,
        actor=filters["actor"] or None,
        since=first.timestamp() if first else None,
        until=(last + timedelta(days=1)).timestamp() if last and last.date() < date.max else None,
        ok={"ok": True, "failed": False}.get(filters["outcome"]),
        cursor=cursor or None,
        limit=PAGE_SIZE,
    )
    try:
        page = await runtime_of(request).backend.audit.list(query)
    except InvalidCursor:
        return bad_request(request, "That page link is not valid.")
    context = {
        "filters": filters,
        "filtered": any(filters.values()),
        "errors": errors,
        "page": page,
        "cursor": cursor or "",
        "actions": ACTIONS,
    }
    return renderer_of(request).page(request, "audit.html", context)
