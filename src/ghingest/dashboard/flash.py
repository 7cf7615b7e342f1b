"""What the page after an action says happened ("Queued 12 forwards again", "Reprocessed: failed again: …").

A state-changing form answers with a redirect (POST-redirect-GET) whose URL carries `flash=<token>`: the action's
name, selection and result and its audit entry's id, signed with the session secret (`Gate.flashes`) and bound to
the principal who acted. The page reads the message from that token only: nothing a user can edit in the URL is
shown, a token made for someone else shows nothing, and one older than `MAX_AGE` neither (a bookmark does not
replay an old message). It works when the audit log could not keep the entry (the message says so).

A reprocessed delivery's page says how its processing went once the worker is done (the delivery's processing is
newer than the action), so that its live refresh turns "Queued for reprocessing" into the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from itsdangerous import BadSignature
from starlette.requests import Request

from ghingest.app.audit import Recorded
from ghingest.app.auth import Gate, Principal
from ghingest.app.runtime import runtime_of
from ghingest.core.errors import StoreUnavailable
from ghingest.core.states import DeliveryStatus
from ghingest.ports.audit import FORWARD_AGAIN, REPLAY, REPROCESS, RETRY

PARAM = "flash"
MAX_AGE = 15 * 60
LABELS = {REPROCESS: "Reprocess", REPLAY: "Replay", RETRY: "Retry", FORWARD_AGAIN: "Forward again"}
NOT_RECORDED = " The audit log could not record this action (see the error log)."


@dataclass(frozen=True, slots=True)
class Flash:
    message: str
    ok: bool


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def flash_target(request: Request, target: str, principal: Principal, done: Recorded) -> str:
    """`target` (a path on this site) with the signed flash of `done` in its query (replacing one it had)."""
    data = {
        "u": principal.name,
        "a": done.action,
        "t": done.at,
        "s": dict(done.selection),
        "r": dict(done.result),
        "ok": done.ok,
        "id": done.entry.id if done.entry is not None else None,
    }
    token = _gate(request).flashes.dumps(data)
    parts = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != PARAM] + [(PARAM, token)]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


async def flash_of(request: Request, principal: Principal) -> Flash | None:
    """The message of the request's `flash` token, if it is valid, recent and `principal`'s."""
    token = request.query_params.get(PARAM)
    if not token:
        return None
    # The page's live stream starts from before what the message reads (a reprocessed delivery), so that a change
    # made meanwhile refreshes it (`live.live_context`).
    request.state.live_seq = await runtime_of(request).backend.feed.latest()
    try:
        data: Any = _gate(request).flashes.loads(token, max_age=MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("u") != principal.name:
        return None
    message, ok = await _message(request, data)
    if data.get("id") is None:
        message += NOT_RECORDED
    return Flash(message, ok)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


async def _message(request: Request, data: dict[str, Any]) -> tuple[str, bool]:
    """The message, and whether it reports success."""
    action, selection, result = str(data.get("a")), dict(data.get("s") or {}), dict(data.get("r") or {})
    if "error" in result or not data.get("ok"):
        return f"{LABELS.get(action, action)} failed: {result.get('error', 'unknown error')}", False
    queued = int(result.get("queued", 0))
    if action == REPROCESS:
        delivery_id = selection.get("delivery_id")
        if delivery_id is None:
            return f"Queued {'1 delivery' if queued == 1 else f'{queued} deliveries'} for reprocessing.", True
        return await _reprocessed(request, str(delivery_id), float(data.get("t", 0.0)), queued)
    if action == RETRY:
        if queued == 0:
            return "Nothing to retry: no dead letter matched.", True
        where = f" to {selection['destination']}" if selection.get("destination") else ""
        return f"Queued {_plural(queued, 'forward')} again{where}.", True
    if action == FORWARD_AGAIN:
        if queued == 0:
            return "Nothing was forwarded: this delivery has no forward to repeat.", True
        return f"Queued {_plural(queued, 'forward')} to {selection.get('to') or 'its destinations'}.", True
    return f"Queued {_plural(queued, 'forward')}.", True


async def _reprocessed(request: Request, delivery_id: str, at: float, queued: int) -> tuple[str, bool]:
    """A reprocessed delivery's outcome once its processing is newer than the action; "queued" until then."""
    if queued == 0:
        return "Nothing to reprocess: no such delivery.", True
    try:
        view = await runtime_of(request).backend.reads.get_delivery(delivery_id)
    except StoreUnavailable:
        view = None
    if view is None or view.processed_at is None or view.processed_at < at:
        return "Queued for reprocessing.", True
    if view.status == DeliveryStatus.FAILED:
        return f"Reprocessed: failed again: {view.error or 'no reason recorded'}", False
    if view.status == DeliveryStatus.PROCESSED:
        return "Reprocessed: processed.", True
    return "Queued for reprocessing.", True
