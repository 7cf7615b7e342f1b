"""The GitHub sync API: what reconciliation found (gaps and each hook's last run) and the tracked repositories.

Reads only, with the same bearer token as the rest of `/api`. `ghingest reconcile` and `ghingest track` change
these; the server's scheduled runs keep them current.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ghingest.app.api import BAD_REQUEST, Cursor, Limit, RuntimeDep
from ghingest.app.api_models import NEXT_CURSOR, DateTime
from ghingest.app.auth import require_reader
from ghingest.app.openapi import DocumentedRoute
from ghingest.core.pagination import DEFAULT_PAGE_SIZE
from ghingest.core.reconcile import Gap, GapKind, GapState, HookScan
from ghingest.core.time import iso
from ghingest.core.tracking import TrackedRepository

sync = APIRouter(
    prefix="/api", dependencies=[Depends(require_reader)], tags=["GitHub sync"], route_class=DocumentedRoute
)


class GapDocument(BaseModel):
    hook: str = Field(description="repo:OWNER/REPO:HOOK_ID, org:ORG:HOOK_ID or app[:HOOK_ID]")
    delivery_id: str = Field(description="X-GitHub-Delivery (GitHub's guid)")
    github_delivery_id: int = Field(description="GitHub's id of the attempt that is redelivered")
    event: str
    action: str | None
    delivered_at: DateTime | None = Field(description="When GitHub first tried to deliver it.")
    status_code: int = Field(description="What GitHub last recorded as ghingest's answer (0: none).")
    github_status: str
    kind: GapKind = Field(description="lost: no hook's copy is here | hook: only this hook's copy is missing")
    state: GapState = Field(
        description="missing: no redelivery asked yet | requested: asked, not arrived | arrived | gave_up: asked as"
        " often as allowed | refused by GitHub | expired: past GitHub's redelivery window"
    )
    found_at: DateTime | None
    requests: int = Field(description="Redeliveries requested so far.")
    last_requested_at: DateTime | None
    arrived_at: DateTime | None
    error: str | None

    @classmethod
    def of(cls, gap: Gap) -> GapDocument:
        return cls(
            hook=gap.hook, delivery_id=gap.delivery_id, github_delivery_id=gap.github_id, event=gap.event,
            action=gap.action, delivered_at=iso(gap.delivered_at), status_code=gap.status_code,
            github_status=gap.github_status, kind=gap.kind, state=gap.state, found_at=iso(gap.found_at),
            requests=gap.requests, last_requested_at=iso(gap.last_requested_at), arrived_at=iso(gap.arrived_at),
            error=gap.error,
        )  # fmt: skip


class GapPage(BaseModel):
    items: list[GapDocument]
    next_cursor: str | None = NEXT_CURSOR
    counts: dict[str, int] = Field(description="Gaps in each state (all hooks).")


class HookScanDocument(BaseModel):
    hook: str
    last_run_at: DateTime | None
    last_ok_at: DateTime | None
    error: str | None
    deliveries_seen: int = Field(description="Deliveries judged by the last run.")
    requests_made: int = Field(description="API requests of the last run.")

    @classmethod
    def of(cls, scan: HookScan) -> HookScanDocument:
        return cls(
            hook=scan.hook, last_run_at=iso(scan.last_run_at), last_ok_at=iso(scan.last_ok_at), error=scan.error,
            deliveries_seen=scan.deliveries_seen, requests_made=scan.requests_made,
        )  # fmt: skip


class TrackedRepositoryDocument(BaseModel):
    repository: str = Field(description="OWNER/REPO as GitHub spells it")
    added_by: str = Field(description="config | cli | api")
    added_at: DateTime | None
    last_polled_at: DateTime | None
    last_status: int | None = Field(description="200, 304 (not modified: no rate-limit cost), or the error's")
    last_changed_at: DateTime | None = Field(description="The last poll that found a new or changed release.")
    last_error: str | None
    next_poll_at: DateTime | None
    releases_known: int
    polls: int
    not_modified: int = Field(description="Polls answered 304.")

    @classmethod
    def of(cls, t: TrackedRepository) -> TrackedRepositoryDocument:
        return cls(
            repository=t.full_name, added_by=t.added_by, added_at=iso(t.added_at), last_polled_at=iso(t.last_polled_at),
            last_status=t.last_status, last_changed_at=iso(t.last_changed_at), last_error=t.last_error,
            next_poll_at=iso(t.next_poll_at) if t.next_poll_at else None, releases_known=len(t.known), polls=t.polls,
            not_modified=t.not_modified,
        )  # fmt: skip


@sync.get("/reconcile/gaps", response_model=GapPage, responses=BAD_REQUEST, summary="Deliveries ghingest lacks")
async def list_gaps(
    runtime: RuntimeDep,
    state: Annotated[list[GapState] | None, Query(description="Only gaps in these states (repeatable).")] = None,
    hook: Annotated[
        str | None, Query(max_length=200, description="Only this hook's gaps.", examples=["repo:octo-org/octo-repo:1"])
    ] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
) -> GapPage:
    """Deliveries GitHub lists for a reconciled hook that ghingest did not record from it, newest first."""
    github = runtime.backend.github
    page = await github.list_gaps(states=frozenset(state) if state else None, hook=hook, cursor=cursor, limit=limit)
    counts = await github.gap_counts()
    return GapPage(
        items=[GapDocument.of(g) for g in page.items],
        next_cursor=page.next_cursor,
        counts={s.value: n for s, n in counts.items()},
    )


@sync.get("/reconcile/hooks", response_model=list[HookScanDocument], summary="Each reconciled hook's last run")
async def list_hook_scans(runtime: RuntimeDep) -> list[HookScanDocument]:
    """When reconciliation last ran for each hook, its last good run, and what it judged."""
    return [HookScanDocument.of(scan) for scan in await runtime.backend.github.list_scans()]


@sync.get(
    "/tracked-repositories",
    response_model=list[TrackedRepositoryDocument],
    summary="Repositories whose releases are polled",
)
async def list_tracked_repositories(runtime: RuntimeDep) -> list[TrackedRepositoryDocument]:
    """Repositories whose releases ghingest polls, with their last poll and its answer."""
    return [TrackedRepositoryDocument.of(t) for t in await runtime.backend.github.list_tracked()]
