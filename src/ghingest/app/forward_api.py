"""The forwarding API: destinations with their counters, a delivery's forwards and attempts, dead letters, replays.

Reads take the same bearer token as the rest of `/api`. A replay changes state, so it needs the operator role and
takes a bearer token only (never a browser session, which has the dashboard's CSRF-protected form instead).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from ghingest.app import audit, operations
from ghingest.app.api import BAD_REQUEST, FORBIDDEN, NOT_FOUND, UNAUTHORIZED, RuntimeDep
from ghingest.app.auth import TokenAuthenticator, require_operator, require_reader
from ghingest.app.runtime import Runtime
from ghingest.core.int64 import Int64
from ghingest.core.time import iso, parse_iso
from ghingest.ports import AttemptView, DestinationStats, ForwardView, ReplaySelection


def require_bearer(request: Request) -> None:
    """401 unless the request carries a valid API token in `Authorization: Bearer`."""
    authenticator: TokenAuthenticator = request.app.state.authenticator
    if not authenticator.valid(authenticator.bearer_of(request)):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid 'Authorization: Bearer <token>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


forwarding = APIRouter(
    prefix="/api", dependencies=[Depends(require_reader)], responses=UNAUTHORIZED, tags=["forwarding"]
)


class Attempt(BaseModel):
    number: int = Field(description="1-based, within its forward.")
    replay: bool
    started_at: str | None
    latency_ms: float
    status_code: int | None = Field(description="The destination's HTTP status; null when there was no answer.")
    outcome: str = Field(description="delivered | retry | dead")
    error: str | None
    response_excerpt: str | None = Field(description="The first 500 characters of the answer's body.")

    @classmethod
    def of(cls, view: AttemptView) -> Attempt:
        return cls(
            number=view.number,
            replay=view.replay,
            started_at=iso(view.started_at),
            latency_ms=round(view.latency * 1000, 3),
            status_code=view.status_code,
            outcome=view.outcome,
            error=view.error,
            response_excerpt=view.response_excerpt,
        )


class Forward(BaseModel):
    id: int
    delivery_id: str
    destination: str
    route: str | None = Field(description="The route that chose the destination; null for a replay to a chosen one.")
    generation: int = Field(description="0 for the original forward; n for the n-th replay.")
    replay: bool
    status: str = Field(description="pending | delivering | retry | delivered | dead | replayed")
    attempts: int
    created_at: str | None
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    completed_at: str | None
    event: str | None = None
    repository: str | None = None
    attempt_log: list[Attempt] = Field(default_factory=list)

    @classmethod
    def of(cls, view: ForwardView) -> Forward:
        return cls(
            id=view.id,
            delivery_id=view.delivery_id,
            destination=view.destination,
            route=view.route,
            generation=view.generation,
            replay=view.replay,
            status=view.status.value,
            attempts=view.attempts,
            created_at=iso(view.created_at),
            next_attempt_at=iso(view.next_attempt_at),
            last_status_code=view.last_status_code,
            last_error=view.last_error,
            completed_at=iso(view.completed_at),
            event=view.event,
            repository=view.repository,
            attempt_log=[Attempt.of(a) for a in view.attempt_log],
        )


class DestinationState(BaseModel):
    name: str
    configured: bool = Field(description="False for a destination that only has stored forwards.")
    url: str | None = Field(description="Scheme, host and port only (a path may hold a token).")
    queued: int = Field(description="Forwards pending, awaiting a retry, or in flight.")
    dead: int = Field(description="Dead-lettered forwards not replayed.")
    attempts: int
    delivered: int
    failed: int
    success_rate: float | None
    last_attempt_at: str | None
    last_success_at: str | None
    last_error: str | None
    last_error_at: str | None


class DeadLetterPage(BaseModel):
    items: list[Forward]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


class ReplayRequest(BaseModel):
    delivery_id: str | None = None
    event: str | None = None
    repository: str | None = Field(default=None, description="Repository full name or glob, e.g. acme/*.")
    since: str | None = Field(default=None, description="Received at or after, ISO-8601.")
    until: str | None = Field(default=None, description="Received before, ISO-8601.")
    destination: str | None = Field(default=None, description="Only forwards that went to this destination.")
    dead_only: bool = Field(default=False, description="Only forwards that are dead-lettered now.")
    job_ids: list[Int64] = Field(default_factory=list, description="Only these forwards (ids).")
    to: str | None = Field(default=None, description="Forward to this destination instead of the original ones.")
    dry_run: bool = Field(default=False, description="Only count what would be replayed.")


class ReplayResult(BaseModel):
    count: int = Field(description="Forwards created (or, with dry_run, that would be).")
    dry_run: bool


def origin_of(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}"


def destination_states(runtime: Runtime, stats: list[DestinationStats]) -> list[DestinationState]:
    table = runtime.route_table()
    by_name = {s.destination: s for s in stats}
    states = []
    for name in sorted(set(table.destinations) | set(by_name)):
        s = by_name.get(name)
        configured = table.destinations.get(name)
        states.append(
            DestinationState(
                name=name,
                configured=configured is not None,
                url=origin_of(configured.url) if configured is not None else None,
                queued=s.queued if s else 0,
                dead=s.dead if s else 0,
                attempts=s.attempts if s else 0,
                delivered=s.delivered if s else 0,
                failed=s.failed if s else 0,
                success_rate=s.success_rate if s else None,
                last_attempt_at=iso(s.last_attempt_at) if s else None,
                last_success_at=iso(s.last_success_at) if s else None,
                last_error=s.last_error if s else None,
                last_error_at=iso(s.last_error_at) if s else None,
            )
        )
    return states


def replay_selection(runtime: Runtime, body: ReplayRequest) -> ReplaySelection:
    """Validate a replay request; raise ValueError with a message for people."""

    def when(name: str, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_iso(value)
        except ValueError:
            raise ValueError(f"{name} must be an ISO-8601 time such as 2024-05-01T00:00:00Z") from None

    selection = ReplaySelection(
        delivery_id=body.delivery_id or None,
        event=body.event or None,
        repository=body.repository or None,
        since=when("since", body.since),
        until=when("until", body.until),
        destination=body.destination or None,
        dead_only=body.dead_only,
        job_ids=tuple(body.job_ids),
        to=body.to or None,
    )
    if selection.is_empty:
        raise ValueError(
            "choose what to replay: a delivery_id, event, repository, time range, destination or dead_only"
        )
    if selection.to is not None and selection.to not in runtime.route_table().destinations:
        raise ValueError(f"to: no destination named {selection.to!r} is configured")
    return selection


@forwarding.get("/destinations", response_model=list[DestinationState], summary="Forward destinations and counters")
async def list_destinations(runtime: RuntimeDep) -> list[DestinationState]:
    return destination_states(runtime, list(await runtime.backend.forward_log.stats()))


@forwarding.get(
    "/deliveries/{delivery_id}/forwards",
    response_model=list[Forward],
    responses=NOT_FOUND,
    summary="A delivery's forwards, with every attempt",
)
async def delivery_forwards(runtime: RuntimeDep, delivery_id: str) -> list[Forward]:
    if await runtime.backend.reads.get_delivery(delivery_id) is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id!r}")
    return [Forward.of(view) for view in await runtime.backend.forward_log.forwards_of(delivery_id)]


@forwarding.get("/dead-letters", response_model=DeadLetterPage, summary="Dead-lettered forwards, newest first")
async def dead_letters(
    runtime: RuntimeDep,
    destination: str | None = None,
    before: Annotated[Int64 | None, Query(description="`next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeadLetterPage:
    views = await runtime.backend.forward_log.dead_letters(destination=destination, before_id=before, limit=limit + 1)
    items = [Forward.of(v) for v in views[:limit]]
    return DeadLetterPage(items=items, next_before=items[-1].id if len(views) > limit else None)


@forwarding.post(
    "/replays",
    response_model=ReplayResult,
    responses={**BAD_REQUEST, **FORBIDDEN},
    dependencies=[Depends(require_operator), Depends(require_bearer)],
    summary="Forward deliveries again (recorded as replays)",
)
async def replay(request: Request, runtime: RuntimeDep, body: ReplayRequest) -> ReplayResult:
    try:
        selection = replay_selection(runtime, body)
    except ValueError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    if body.dry_run:  # changes nothing: not an action the audit log keeps
        return ReplayResult(count=await operations.replay(runtime.backend, selection, dry_run=True), dry_run=True)
    done = await audit.replay(runtime, audit.actor_of(request, request.state.principal.name), selection)
    return ReplayResult(count=int(done.result["queued"]), dry_run=False)
