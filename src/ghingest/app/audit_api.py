"""`GET /api/audit`: the audit log of operator actions and sign-ins (`ghingest.app.audit`), newest first. For
operators only (bearer tokens, or an operator's dashboard session): it names people and their addresses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ghingest.app.api import BAD_REQUEST, Cursor, Limit, RuntimeDep, epoch_filter
from ghingest.app.api_models import EXAMPLE_TIME, DateTime, examples
from ghingest.app.auth import require_operator, require_reader
from ghingest.app.openapi import DocumentedRoute
from ghingest.core.pagination import DEFAULT_PAGE_SIZE
from ghingest.core.time import iso
from ghingest.ports import AuditEntry, AuditQuery

audit_api = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_reader), Depends(require_operator)],
    tags=["audit log"],
    route_class=DocumentedRoute,
)


@examples(
    {
        "id": "9f2c4e1a7b3d5f60a1b2c3d4",
        "at": EXAMPLE_TIME,
        "actor": "api token 1",
        "client": "203.0.113.7",
        "action": "retry",
        "selection": {"dead_only": True, "destination": "ci"},
        "result": {"queued": 12},
        "outcome": "ok",
    }
)
class AuditRecord(BaseModel):
    id: str
    at: DateTime
    actor: str = Field(description="A user's name, `api token <n>`, or `cli:<user>@<host>`.")
    client: str | None = Field(description="The client's address; null for the command line.")
    action: str = Field(
        description="reprocess | replay | retry | forward_again | sign_in | sign_in_failed | sign_out (an open set)."
    )
    selection: dict[str, Any] = Field(description="What the action was asked to act on (ids, filters, counts).")
    result: dict[str, Any] = Field(description='What came of it, e.g. {"queued": 12}, or {"error": "…"}.')
    outcome: Literal["ok", "failed"]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRecord:
        return cls(
            id=entry.id,
            at=iso(entry.at) or "",
            actor=entry.actor,
            client=entry.client,
            action=entry.action,
            selection=dict(entry.selection),
            result=dict(entry.result),
            outcome="ok" if entry.ok else "failed",
        )


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next_cursor: str | None


@audit_api.get("/audit", response_model=AuditPage, responses=BAD_REQUEST, summary="The audit log, newest first")
async def list_audit(
    runtime: RuntimeDep,
    action: Annotated[str | None, Query(max_length=64, description="Only this action.", examples=["retry"])] = None,
    actor: Annotated[
        str | None, Query(max_length=256, description="Only this actor, exactly as listed.", examples=["api token 1"])
    ] = None,
    since: Annotated[DateTime | None, Query(description="At or after.")] = None,
    until: Annotated[DateTime | None, Query(description="Before.")] = None,
    outcome: Annotated[Literal["ok", "failed"] | None, Query(description="Only ok or only failed actions.")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> AuditPage:
    """Who started which operator action (reprocess, replay, retry, forward again) or signed in or out, when, from
    where, on what, and what came of it. Never a payload, a token or a password."""
    query = AuditQuery(
        action=action or None,
        actor=actor or None,
        since=epoch_filter("since", since),
        until=epoch_filter("until", until),
        ok=None if outcome is None else outcome == "ok",
        cursor=cursor or None,
        limit=limit,
    )
    page = await runtime.backend.audit.list(query)
    return AuditPage(items=[AuditRecord.of(e) for e in page.items], next_cursor=page.next_cursor)
