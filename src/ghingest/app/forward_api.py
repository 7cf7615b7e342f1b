"""The forwarding API: destinations with their counters and health, a delivery's forwards and attempts, dead
letters, replays; pausing, resuming and testing a destination.

Reads take the same bearer token as the rest of `/api`. A replay, a pause, a resume and a test delivery change state,
so they need the operator role and take a bearer token only (never a browser session, which has the dashboard's
CSRF-protected forms instead).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from ghingest.app import audit, destinations, operations
from ghingest.app.api import INVALID_SELECTION, NOT_FOUND, RuntimeDep
from ghingest.app.api_models import DELIVERY_ID, EXAMPLE_TIME, DateTime, examples
from ghingest.app.auth import Principal, require_bearer, require_operator, require_reader
from ghingest.app.destinations import DestinationOverview, UnknownDestination, origin_of
from ghingest.app.openapi import DocumentedRoute
from ghingest.app.runtime import Runtime
from ghingest.core.destination_health import HealthState as HealthStatus
from ghingest.core.destination_health import WindowFigures
from ghingest.core.forward_states import ForwardStatus
from ghingest.core.int64 import Int64
from ghingest.core.time import iso, parse_iso
from ghingest.ports import AttemptView, DestinationTest, ForwardView, ReplaySelection

forwarding = APIRouter(
    prefix="/api", dependencies=[Depends(require_reader)], tags=["forwarding"], route_class=DocumentedRoute
)


class Attempt(BaseModel):
    number: int = Field(description="1-based, within its forward.")
    replay: bool
    started_at: DateTime | None
    latency_ms: float
    status_code: int | None = Field(description="The destination's HTTP status; null when there was no answer.")
    outcome: Literal[ForwardStatus.DELIVERED, ForwardStatus.RETRY, ForwardStatus.DEAD] = Field(
        description="The forward's status after this attempt."
    )
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


@examples(
    {
        "id": 42,
        "delivery_id": DELIVERY_ID,
        "destination": "ci",
        "route": "releases-to-ci",
        "generation": 0,
        "replay": False,
        "status": "delivered",
        "attempts": 1,
        "created_at": EXAMPLE_TIME,
        "next_attempt_at": None,
        "last_status_code": 200,
        "last_error": None,
        "completed_at": "2024-05-20T10:00:00.180Z",
        "event": "release",
        "repository": "octo-org/octo-repo",
        "attempt_log": [
            {
                "number": 1,
                "replay": False,
                "started_at": "2024-05-20T10:00:00.050Z",
                "latency_ms": 130.5,
                "status_code": 200,
                "outcome": "delivered",
                "error": None,
                "response_excerpt": "ok",
            }
        ],
    }
)
class Forward(BaseModel):
    id: int
    delivery_id: str
    destination: str
    route: str | None = Field(description="The route that chose the destination; null for a replay to a chosen one.")
    generation: int = Field(description="0 for the original forward; n for the n-th replay.")
    replay: bool
    status: ForwardStatus = Field(description="replayed: a dead forward that a replay superseded.")
    attempts: int
    created_at: DateTime | None
    next_attempt_at: DateTime | None
    last_status_code: int | None
    last_error: str | None
    completed_at: DateTime | None
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
            status=view.status,
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


class HealthWindow(BaseModel):
    window_seconds: float = Field(description="3600 (the last hour) or 86400 (the last 24 hours).")
    attempts: int = Field(description="Attempts that started in the window (test deliveries are not attempts).")
    delivered: int
    failed: int
    dead: int = Field(description="Attempts that dead-lettered their forward.")
    success_rate: float | None
    p50_ms: float | None = Field(description="Median attempt latency (nearest rank).")
    p95_ms: float | None

    @classmethod
    def of(cls, w: WindowFigures) -> HealthWindow:
        return cls(
            window_seconds=w.seconds, attempts=w.attempts, delivered=w.delivered, failed=w.failed, dead=w.dead,
            success_rate=w.success_rate, p50_ms=_ms(w.p50), p95_ms=_ms(w.p95),
        )  # fmt: skip


class HealthState(BaseModel):
    state: HealthStatus = Field(description="`idle`: no attempt in the last 24 hours.")
    reason: str = Field(description="Why, in words: e.g. 'success rate 80.0% in the last hour'.")


class PauseState(BaseModel):
    paused_by: str
    paused_at: DateTime | None


class PingResult(BaseModel):
    destination: str
    delivery_id: str = Field(description="The ping's X-GitHub-Delivery.")
    sent_by: str
    sent_at: DateTime | None
    delivered: bool = Field(description="The destination answered 2xx.")
    status_code: int | None = Field(description="The destination's HTTP status; null when there was no answer.")
    latency_ms: float
    error: str | None
    response_excerpt: str | None = Field(description="The first 500 characters of the answer's body.")

    @classmethod
    def of(cls, t: DestinationTest) -> PingResult:
        return cls(
            destination=t.destination, delivery_id=t.delivery_id, sent_by=t.sent_by, sent_at=iso(t.sent_at),
            delivered=t.delivered, status_code=t.status_code, latency_ms=round(t.latency * 1000, 3), error=t.error,
            response_excerpt=t.response_excerpt,
        )  # fmt: skip


class DestinationState(BaseModel):
    name: str
    configured: bool = Field(description="False for a destination that only has stored forwards.")
    url: str | None = Field(description="Scheme, host and port only (a path may hold a token).")
    queued: int = Field(description="Forwards pending, awaiting a retry, or in flight.")
    dead: int = Field(description="Dead-lettered forwards not replayed.")
    attempts: int = Field(description="All time.")
    delivered: int
    failed: int
    success_rate: float | None = Field(description="All time; see `windows` for the recent figures.")
    last_attempt_at: DateTime | None
    last_success_at: DateTime | None
    last_error: str | None
    last_error_at: DateTime | None
    last_error_recovered_at: DateTime | None = Field(
        default=None, description="The first successful attempt after the last error; null while not recovered."
    )
    health: HealthState
    windows: list[HealthWindow] = Field(description="The last hour and the last 24 hours, by attempt start.")
    paused: PauseState | None = Field(default=None, description="Set while paused: its jobs wait, none is attempted.")
    last_test: PingResult | None = None

    @classmethod
    def of(cls, d: DestinationOverview) -> DestinationState:
        s = d.stats
        return cls(
            name=d.name,
            configured=d.configured is not None,
            url=origin_of(d.configured.url) if d.configured is not None else None,
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
            last_error_recovered_at=iso(d.recovered_at) if d.last_error_recovered else None,
            health=HealthState(state=d.health.state, reason=d.health.reason),
            windows=[HealthWindow.of(w) for w in d.windows],
            paused=PauseState(paused_by=d.pause.paused_by, paused_at=iso(d.pause.paused_at)) if d.pause else None,
            last_test=PingResult.of(d.test) if d.test is not None else None,
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class DeadLetterPage(BaseModel):
    items: list[Forward]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")


@examples(
    {"destination": "ci", "dead_only": True, "dry_run": True},
    {"repository": "acme/*", "since": "2024-05-01T00:00:00Z", "until": "2024-05-02T00:00:00Z", "to": "ci"},
)
class ReplayRequest(BaseModel):
    """What to replay: at least one of `delivery_id`, `event`, `repository`, `since`/`until`, `destination` or
    `dead_only` (they combine: all must hold)."""

    delivery_id: str | None = None
    event: str | None = Field(default=None, examples=["release"])
    repository: str | None = Field(default=None, description="Repository full name or glob, e.g. acme/*.")
    since: DateTime | None = Field(default=None, description="Received at or after.")
    until: DateTime | None = Field(default=None, description="Received before.")
    destination: str | None = Field(default=None, description="Only forwards that went to this destination.")
    dead_only: bool = Field(default=False, description="Only forwards that are dead-lettered now.")
    job_ids: list[Int64] = Field(default_factory=list, description="Only these forwards (ids).")
    to: str | None = Field(default=None, description="Forward to this destination instead of the original ones.")
    dry_run: bool = Field(default=False, description="Only count what would be replayed.")


class ReplayResult(BaseModel):
    count: int = Field(description="Forwards created (or, with dry_run, that would be).")
    dry_run: bool


async def destination_states(runtime: Runtime) -> list[DestinationState]:
    return [DestinationState.of(d) for d in await destinations.overview(runtime)]


async def destination_state(runtime: Runtime, name: str) -> DestinationState:
    for state in await destination_states(runtime):
        if state.name == name:
            return state
    raise UnknownDestination(name)


class InvalidReplay(ValueError):
    """A replay request that cannot run: `field` names the request's field at fault (None: no field selects)."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


async def replay_selection(runtime: Runtime, body: ReplayRequest) -> ReplaySelection:
    """Validate a replay request (the destinations it names must exist); raise `InvalidReplay`."""

    def when(name: str, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return parse_iso(value)
        except ValueError:
            raise InvalidReplay("must be an ISO-8601 time such as 2024-05-01T00:00:00Z", field=name) from None

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
        raise InvalidReplay(
            "choose what to replay: a delivery_id, event, repository, time range, destination or dead_only"
        )
    configured = runtime.route_table().destinations
    if selection.to is not None and selection.to not in configured:
        raise InvalidReplay(f"no destination named {selection.to!r} is configured", field="to")
    if selection.destination is not None and selection.destination not in configured:
        forwarded = {s.destination for s in await runtime.backend.forward_log.stats()}
        if selection.destination not in forwarded:
            raise InvalidReplay(
                f"no destination named {selection.destination!r} is configured or was forwarded to",
                field="destination",
            )
    return selection


@forwarding.get("/destinations", response_model=list[DestinationState], summary="Forward destinations and counters")
async def list_destinations(runtime: RuntimeDep) -> list[DestinationState]:
    return await destination_states(runtime)


@forwarding.get(
    "/deliveries/{delivery_id}/forwards",
    response_model=list[Forward],
    responses=NOT_FOUND,
    summary="A delivery's forwards, with every attempt",
)
async def list_delivery_forwards(runtime: RuntimeDep, delivery_id: str) -> list[Forward]:
    """Each destination's forward of the delivery (and its replays), with every attempt's answer."""
    if await runtime.backend.reads.get_delivery(delivery_id) is None:
        raise HTTPException(404, detail=f"no delivery {delivery_id!r}")
    return [Forward.of(view) for view in await runtime.backend.forward_log.forwards_of(delivery_id)]


@forwarding.get("/dead-letters", response_model=DeadLetterPage, summary="Dead-lettered forwards, newest first")
async def list_dead_letters(
    runtime: RuntimeDep,
    destination: Annotated[str | None, Query(description="Only this destination's.", examples=["ci"])] = None,
    before: Annotated[Int64 | None, Query(description="`next_before` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
) -> DeadLetterPage:
    """Forwards that ran out of attempts (or got an answer not worth retrying), not replayed yet."""
    views = await runtime.backend.forward_log.dead_letters(destination=destination, before_id=before, limit=limit + 1)
    items = [Forward.of(v) for v in views[:limit]]
    return DeadLetterPage(items=items, next_before=items[-1].id if len(views) > limit else None)


@forwarding.post(
    "/replays",
    response_model=ReplayResult,
    responses=INVALID_SELECTION,
    dependencies=[Depends(require_operator), Depends(require_bearer)],
    summary="Forward deliveries again (recorded as replays)",
)
async def replay_forwards(request: Request, runtime: RuntimeDep, body: ReplayRequest) -> ReplayResult:
    """A new forward (generation n+1) per selected delivery and destination, to the original destinations or to
    `to`; a dead forward it supersedes becomes `replayed`. `dry_run` only counts. As `ghingest replay` does."""
    try:
        selection = await replay_selection(runtime, body)
    except InvalidReplay as exc:
        raise HTTPException(400, detail=str(exc)) from None
    if body.dry_run:  # changes nothing: not an action the audit log keeps
        return ReplayResult(count=await operations.replay(runtime.backend, selection, dry_run=True), dry_run=True)
    done = await audit.replay(runtime, audit.actor_of(request, request.state.principal.name), selection)
    return ReplayResult(count=int(done.result["queued"]), dry_run=False)


_OPERATOR_BEARER = [Depends(require_operator), Depends(require_bearer)]


def _actor(request: Request) -> audit.Actor:
    """The bearer principal at the request's address (an `UnknownDestination` is a 404: `asgi.create_api`)."""
    principal: Principal = request.state.principal
    return audit.actor_of(request, principal.name)


@forwarding.post(
    "/destinations/{name}/pause",
    response_model=DestinationState,
    responses=NOT_FOUND,
    dependencies=_OPERATOR_BEARER,
    summary="Pause a destination: its forwards wait, none is attempted, until it is resumed",
)
async def pause_destination(runtime: RuntimeDep, request: Request, name: str) -> DestinationState:
    await destinations.pause_destination(runtime, name, actor=_actor(request))
    return await destination_state(runtime, name)


@forwarding.post(
    "/destinations/{name}/resume",
    response_model=DestinationState,
    responses=NOT_FOUND,
    dependencies=_OPERATOR_BEARER,
    summary="Resume a paused destination: its waiting forwards are attempted at once",
)
async def resume_destination(runtime: RuntimeDep, request: Request, name: str) -> DestinationState:
    await destinations.resume_destination(runtime, name, actor=_actor(request))
    return await destination_state(runtime, name)


@forwarding.post(
    "/destinations/{name}/test",
    response_model=PingResult,
    responses=NOT_FOUND,
    dependencies=_OPERATOR_BEARER,
    summary="Send a signed GitHub ping to a configured destination now, and say what it answered",
)
async def send_test_delivery(runtime: RuntimeDep, request: Request, name: str) -> PingResult:
    return PingResult.of(await destinations.send_test_delivery(runtime, name, actor=_actor(request)))
