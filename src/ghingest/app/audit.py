"""Recording operator actions and sign-ins in the audit log (`ghingest.ports.AuditLog`): the one helper that the
dashboard, the API and the CLI call.

An entry says who (`Actor`: a signed-in user's name, `api token <n>` for a bearer call, `cli:<user>@<host>` for
the command line), from where (the client's address after trusted proxies), when (the runtime's clock), which
action on what selection (ids, times, filters, counts: `replay_selection_document`, `reprocess_selection_document`;
never a payload, a token or a password) and what came of it (`{"queued": 12}`, an error).

The action runs first and its entry is written afterwards, with its result. When the entry cannot be written, the
action's effect stands (it is done, and undoing a requeue or a replay is no option): the failure is logged at error
level with the whole entry (`audit.not_recorded`: the log is then the record) and counted
(`ghingest_audit_write_failures_total`), and the caller is told (`Recorded.entry` is None) so that it can say so.
An action that raises is recorded as failed, with its error, before the error goes on.
"""

from __future__ import annotations

import getpass
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from ghingest.app import operations
from ghingest.app.logs import get_logger
from ghingest.app.proxies import client_address
from ghingest.core.time import iso
from ghingest.ports.audit import REPLAY, REPROCESS, AuditEntry
from ghingest.ports.forwarding import ReplaySelection
from ghingest.ports.reads import ReprocessSelection

if TYPE_CHECKING:
    from ghingest.app.runtime import Runtime

log = get_logger("ghingest.audit")
MAX_ACTOR = 256  # an SSO name or a typed user name is cut to this
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    client: str | None = None


def actor_of(connection: HTTPConnection, name: str) -> Actor:
    """`name` (the request's principal's) at the request's client address."""
    return Actor(name[:MAX_ACTOR], client_address(connection))


def cli_actor() -> Actor:
    """Whoever runs the command, on this machine: `cli:<user>@<host>`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's arbitrary user)
        user = "unknown"
    return Actor(f"cli:{user}@{socket.gethostname()}"[:MAX_ACTOR])


@dataclass(frozen=True, slots=True)
class Recorded:
    """An action as recorded: what it was asked and did, and its entry (None: the audit log could not keep it;
    logged and counted)."""

    action: str
    at: float  # when it started
    selection: Mapping[str, Any]
    result: Mapping[str, Any]
    ok: bool
    entry: AuditEntry | None


def error_text(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"[:MAX_ERROR]


async def record(
    runtime: Runtime,
    actor: Actor,
    action: str,
    selection: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    ok: bool = True,
    at: float | None = None,
) -> Recorded:
    """Append one entry (at `at`, else now); never raises for the audit log's sake (see the module's docstring)."""
    entry = AuditEntry(
        id=secrets.token_hex(12),
        at=runtime.clock.now() if at is None else at,
        actor=actor.name,
        client=actor.client,
        action=action,
        selection=dict(selection),
        result=dict(result),
        ok=ok,
    )
    try:
        await runtime.backend.audit.append(entry)
    except Exception as exc:  # StoreUnavailable, or any adapter failure: the action's effect stands regardless
        runtime.metrics.audit_write_failures.labels(action).inc()
        log.error(
            "audit.not_recorded",
            error=error_text(exc),
            actor=entry.actor,
            client=entry.client,
            audit_action=action,
            selection=entry.selection,
            result=entry.result,
            ok=ok,
        )
        return Recorded(action, entry.at, entry.selection, entry.result, ok, None)
    return Recorded(action, entry.at, entry.selection, entry.result, ok, entry)


async def perform(
    runtime: Runtime,
    actor: Actor,
    action: str,
    selection: Mapping[str, Any],
    work: Callable[[], Awaitable[Mapping[str, Any]]],
) -> Recorded:
    """Run `work` (the action: it returns its result) and record it; an action that raises is recorded as failed
    (`{"error": ...}`) and its error raised again. The entry's time is when the action started: what it did (a
    delivery processed again) may be done before the entry is written."""
    started = runtime.clock.now()
    try:
        result = await work()
    except Exception as exc:
        await record(runtime, actor, action, selection, {"error": error_text(exc)}, ok=False, at=started)
        raise
    return await record(runtime, actor, action, selection, result, ok="error" not in result, at=started)


def _compact(document: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in document.items() if value not in (None, False, "", ())}


def replay_selection_document(selection: ReplaySelection) -> dict[str, Any]:
    """What a replay (retry, forward again) was asked to act on: its filters, and how many job ids (not them)."""
    return _compact(
        {
            "delivery_id": selection.delivery_id,
            "event": selection.event,
            "repository": selection.repository,
            "since": iso(selection.since),
            "until": iso(selection.until),
            "destination": selection.destination,
            "dead_only": selection.dead_only,
            "selected_jobs": len(selection.job_ids) or None,
            "to": selection.to,
        }
    )


def reprocess_selection_document(selection: ReprocessSelection) -> dict[str, Any]:
    return _compact(
        {"delivery_id": selection.delivery_id, "since": iso(selection.since), "failed_only": selection.failed_only}
    )


async def replay(runtime: Runtime, actor: Actor, selection: ReplaySelection, *, action: str = REPLAY) -> Recorded:
    """Replay the selection's forwards (`operations.replay`) as `action` (a replay, a retry, a forward again),
    recorded with `{"queued": n}`."""

    async def work() -> dict[str, Any]:
        return {"queued": await operations.replay(runtime.backend, selection)}

    return await perform(runtime, actor, action, replay_selection_document(selection), work)


async def reprocess(runtime: Runtime, actor: Actor, selection: ReprocessSelection) -> Recorded:
    """Requeue the selection's deliveries (`operations.reprocess`), recorded with `{"queued": n}`."""

    async def work() -> dict[str, Any]:
        return {"queued": await operations.reprocess(runtime.backend, selection)}

    return await perform(runtime, actor, REPROCESS, reprocess_selection_document(selection), work)
