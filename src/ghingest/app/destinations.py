"""Destination health and control: what the API, the dashboard and the CLI show of each destination, and the three
actions an operator takes on one.

Every action goes through one function here, the one place to audit it: `pause_destination`,
`resume_destination`, `send_test_delivery`. Each raises `UnknownDestination` for a name that is neither configured
nor known to the forward log.

A test delivery is a GitHub `ping` (`zen`, `hook_id`, `hook`), built and re-signed with the destination's secret by
the very code that builds a forward (`core.routing.build_forward`) and sent now, through the forwarder's client and
`send`, within the destination's `timeout`. It is kept as the destination's last test (`ForwardQueue.record_test`),
not in the attempt log: it is no forward, and must not move the health figures. It is sent whether or not the
destination is paused: it is how an operator checks that a paused destination is back (ADR 0024).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ghingest.app import forwarder
from ghingest.app.runtime import Runtime
from ghingest.core.delivery import ContentKind
from ghingest.core.destination_health import RECENT, WINDOWS, Health, WindowFigures, judge, recovered
from ghingest.core.routing import Destination, build_forward
from ghingest.core.time import iso
from ghingest.ports import DestinationPause, DestinationStats, DestinationTest

ZEN = (
    "Responsive is better than fast.", "It's not fully shipped until it's fast.",
    "Anything added dilutes everything else.", "Practicality beats purity.", "Approachable is better than simple.",
    "Mind your words, they are important.", "Speak like a human.", "Half measures are as bad as nothing at all.",
    "Encourage flow.", "Non-blocking is better than blocking.", "Favor focus over features.",
    "Avoid administrative distraction.", "Design for failure.", "Keep it logically awesome.",
)  # fmt: skip


class UnknownDestination(LookupError):
    """No destination of that name is configured or known to the forward log."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no destination named {name!r}")
        self.name = name


@dataclass(frozen=True, slots=True)
class DestinationOverview:
    name: str
    configured: Destination | None
    stats: DestinationStats | None
    windows: tuple[WindowFigures, ...]  # `WINDOWS`, shortest first
    health: Health
    recovered_at: float | None  # the first success after the last error
    pause: DestinationPause | None
    test: DestinationTest | None

    @property
    def last_error_recovered(self) -> bool:
        return recovered(self.stats.last_error_at if self.stats else None, self.recovered_at)


async def overview(runtime: Runtime) -> list[DestinationOverview]:
    """Every destination configured or known to the forward log, by name, with its health."""
    table = runtime.route_table()
    backend = runtime.backend
    stats = {s.destination: s for s in await backend.forward_log.stats()}
    activity = {a.destination: a for a in await backend.forward_log.activity(WINDOWS, recent=RECENT)}
    pauses = {p.destination: p for p in await backend.forwards.paused()}
    tests = {t.destination: t for t in await backend.forward_log.tests()}
    out = []
    for name in sorted(set(table.destinations) | set(stats) | set(pauses)):
        seen = activity.get(name)
        windows = seen.windows if seen is not None else tuple(WindowFigures(w) for w in WINDOWS)
        out.append(
            DestinationOverview(
                name=name,
                configured=table.destinations.get(name),
                stats=stats.get(name),
                windows=windows,
                health=judge(windows, seen.recent if seen is not None else ()),
                recovered_at=seen.recovered_at if seen is not None else None,
                pause=pauses.get(name),
                test=tests.get(name),
            )
        )
    return out


async def _known(runtime: Runtime, name: str) -> None:
    if name in runtime.route_table().destinations:
        return
    if any(s.destination == name for s in await runtime.backend.forward_log.stats()):
        return
    if any(p.destination == name for p in await runtime.backend.forwards.paused()):
        return
    raise UnknownDestination(name)


async def pause_destination(runtime: Runtime, name: str, *, by: str) -> DestinationPause:
    """Pause a destination: no forwarder claims its jobs until it is resumed; they wait, none is attempted."""
    await _known(runtime, name)
    return await runtime.backend.forwards.pause(name, by=by)


async def resume_destination(runtime: Runtime, name: str, *, by: str) -> DestinationPause | None:
    """Resume a paused destination (its due jobs at once); the pause it ended, or None if it was not paused."""
    await _known(runtime, name)
    del by  # who resumed: for the audit log
    return await runtime.backend.forwards.resume(name)


async def send_test_delivery(runtime: Runtime, name: str, *, by: str) -> DestinationTest:
    """Send a signed `ping` to a configured destination now; record and return what it answered."""
    destination = runtime.route_table().destinations.get(name)
    if destination is None:
        raise UnknownDestination(name)
    delivery_id = str(uuid.uuid4())
    hook_id = ping_hook_id(name)
    request = build_forward(
        destination,
        delivery_id=delivery_id,
        event="ping",
        content_kind=ContentKind.JSON,
        headers={"x-github-hook-id": str(hook_id)},
        body=orjson.dumps(ping_payload(destination, hook_id=hook_id, now=time.time())),
    )
    options = forwarder.transport_options(destination)
    hidden = forwarder.secrets_of(options)
    status_code: int | None = None
    excerpt: str | None = None
    sent_at = time.time()
    t0 = time.perf_counter()
    try:
        transport = forwarder.DEFAULT_TRANSPORT(options)
    except Exception as exc:  # an unreadable `ca_bundle`, say: the answer is the reason, as an attempt's would be
        error: str | None = f"the destination's client cannot be built: {forwarder.describe(exc, secrets=hidden)}"
    else:
        try:
            status_code, error, excerpt, _ = await forwarder.send(
                transport, forwarder.target_of(destination.url), destination, request
            )
        except Exception as exc:  # unforeseen, as an attempt's: recorded as the answer
            error = forwarder.describe(exc, secrets=hidden)
        finally:
            await transport.close()
    test = DestinationTest(
        destination=name,
        delivery_id=delivery_id,
        sent_by=by,
        sent_at=sent_at,
        latency=time.perf_counter() - t0,
        status_code=status_code,
        error=error,
        response_excerpt=excerpt,
    )
    await runtime.backend.forwards.record_test(test)
    return test


def ping_hook_id(name: str) -> int:
    """A hook id of the destination's own, the same on every process (GitHub's are positive 64-bit integers)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") or 1


def ping_payload(destination: Destination, *, hook_id: int, now: float) -> dict[str, Any]:
    """What GitHub sends when a webhook is created or pinged: `zen`, `hook_id` and the `hook` (its config without a
    secret; the URL without its path, which may hold a token)."""
    at = iso(now)
    api = f"https://api.github.com/hooks/{hook_id}"
    return {
        "zen": random.choice(ZEN),  # noqa: S311 - a saying, not a secret
        "hook_id": hook_id,
        "hook": {
            "type": "Repository",
            "id": hook_id,
            "name": "web",
            "active": True,
            "events": ["*"],
            "config": {"content_type": "json", "insecure_ssl": "0", "url": origin_of(destination.url)},
            "updated_at": at,
            "created_at": at,
            "url": api,
            "test_url": f"{api}/test",
            "ping_url": f"{api}/pings",
            "deliveries_url": f"{api}/deliveries",
            "last_response": {"code": None, "status": "unused", "message": None},
        },
        "sender": {"login": "ghingest", "type": "Bot"},
    }


def origin_of(url: str) -> str:
    """Scheme, host and port only (a path may hold a token; user information is a credential)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}"
