"""The operator API: reprocessing recorded deliveries, and the audit log of every operator action and sign-in.

`POST /api/reprocess` changes state, so it takes a bearer token with the operator role only (as `POST
/api/replays` does); `GET /api/audit` is for operators (bearer tokens, or an operator's dashboard session): it
names people and their addresses.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ghingest.app import audit
from ghingest.app.api import BAD_REQUEST, FORBIDDEN, UNAUTHORIZED, Cursor, Limit, RuntimeDep
from ghingest.app.auth import Principal, require_operator, require_reader
from ghingest.app.forward_api import require_bearer
from ghingest.core.pagination import DEFAULT_PAGE_SIZE
from ghingest.core.time import iso, parse_iso
from ghingest.ports import AuditEntry, AuditQuery, ReprocessSelection

actions = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_reader), Depends(require_operator)],
    responses={**UNAUTHORIZED, **FORBIDDEN},
    tags=["operator actions"],
)


def principal_of(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


class ReprocessRequest(BaseModel):
    delivery_id: str | None = None
    since: str | None = Field(default=None, description="Every delivery received at or after, ISO-8601.")
    failed_only: bool = Field(default=False, description="Only deliveries whose processing failed.")


class ReprocessResult(BaseModel):
    queued: int = Field(description="Deliveries put back to be processed again (by any worker).")


class AuditRecord(BaseModel):
    id: str
    at: str | None
    actor: str = Field(description="A user's name, `api token <n>`, or `cli:<user>@<host>`.")
    client: str | None = Field(description="The client's address; null for the command line.")
    action: str = Field(description="reprocess | replay | retry | forward_again | sign_in | sign_in_failed | …")
    selection: dict[str, Any] = Field(description="What the action was asked to act on (ids, filters, counts).")
    result: dict[str, Any] = Field(description='What came of it, e.g. {"queued": 12}, or an error.')
    outcome: Literal["ok", "failed"]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRecord:
        return cls(
            id=entry.id,
            at=iso(entry.at),
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


def _epoch(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise HTTPException(400, detail=f"{name} must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None


@actions.post(
    "/reprocess",
    response_model=ReprocessResult,
    responses=BAD_REQUEST,
    dependencies=[Depends(require_bearer)],
    summary="Process recorded deliveries again (one, those since a time, or the failed ones)",
)
async def reprocess(request: Request, runtime: RuntimeDep, body: ReprocessRequest) -> ReprocessResult:
    selection = ReprocessSelection(
        delivery_id=body.delivery_id or None, since=_epoch("since", body.since), failed_only=body.failed_only
    )
    if selection.delivery_id is None and selection.since is None and not selection.failed_only:
        raise HTTPException(400, detail="choose what to reprocess: a delivery_id, since or failed_only")
    done = await audit.reprocess(runtime, audit.actor_of(request, principal_of(request).name), selection)
    return ReprocessResult(queued=int(done.result["queued"]))


@actions.get("/audit", response_model=AuditPage, responses=BAD_REQUEST, summary="The audit log, newest first")
async def list_audit(
    runtime: RuntimeDep,
    action: Annotated[str | None, Query(max_length=64, description="e.g. replay, retry, sign_in_failed.")] = None,
    actor: Annotated[str | None, Query(max_length=256, description="Exactly as listed, e.g. `api token 1`.")] = None,
    since: Annotated[str | None, Query(description="At or after, ISO-8601.")] = None,
    until: Annotated[str | None, Query(description="Before, ISO-8601.")] = None,
    outcome: Literal["ok", "failed"] | None = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> AuditPage:
    query = AuditQuery(
        action=action or None,
        actor=actor or None,
        since=_epoch("since", since),
        until=_epoch("until", until),
        ok=None if outcome is None else outcome == "ok",
        cursor=cursor or None,
        limit=limit,
    )
    page = await runtime.backend.audit.list(query)
    return AuditPage(items=[AuditRecord.of(e) for e in page.items], next_cursor=page.next_cursor)
