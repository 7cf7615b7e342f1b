"""`ghingest destinations`: the forward destinations' health, and pausing, resuming and testing one.

Each command runs against the configured store and route file (as `ghingest replay` does), so it acts on what every
running forwarder shares: a pause is seen by all of them within a second. Exit codes (`terminal.ExitCode`): 0 done,
1 the test delivery was not answered 2xx, 2 the configuration is wrong or no destination has that name.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from ghingest.app.destinations import (
    UnknownDestination,
    pause_destination,
    resume_destination,
    send_test_delivery,
)
from ghingest.app.terminal import App, ExitCode, fail
from ghingest.core.time import iso

if TYPE_CHECKING:
    from ghingest.app.runtime import Runtime

T = TypeVar("T")
destinations_app = App(help="Forward destinations: health, pause, resume, send a test delivery.")
stdout = Console(width=None if sys.stdout.isatty() else 200)  # piped: no wrapping at 80 columns
Name = Annotated[str, typer.Argument(help="The destination's name, as in the route file.")]


def _run(action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `action` on a started runtime of the configured store and routes; an unknown destination exits 2."""
    from ghingest.app import cli
    from ghingest.app.runtime import Runtime
    from ghingest.app.settings import ConfigError

    settings = cli._settings()
    try:
        runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    cli._upgrade(settings)

    async def main() -> T:
        await runtime.start()
        try:
            return await action(runtime)
        finally:
            await runtime.stop()

    try:
        return asyncio.run(main())
    except UnknownDestination as exc:
        raise fail(str(exc)) from None


def _operator() -> str:
    return f"{getpass.getuser()} (cli)"


@destinations_app.command("list")
def list_destinations(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the destinations as JSON (as GET /api/destinations).")
    ] = False,
) -> None:
    """Every destination with its health over the last hour and 24 hours, queue, pause and last test."""
    from ghingest.app.forward_api import destination_states

    states = _run(destination_states)
    if as_json:
        typer.echo(orjson.dumps([s.model_dump() for s in states], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title="destinations")
    for column in ("destination", "health", "last hour", "last 24 hours", "queued", "dead", "paused", "last error"):
        table.add_column(column, justify="right" if column in ("queued", "dead") else "left")
    for s in states:
        windows = [
            "—" if w.success_rate is None else f"{w.success_rate:.1%} of {w.attempts}, p95 {w.p95_ms:.0f} ms"
            for w in s.windows
        ]
        paused = f"by {s.paused.paused_by} at {s.paused.paused_at}" if s.paused else ""
        error = s.last_error or ""
        if error and s.last_error_recovered_at:
            error += f" (recovered at {s.last_error_recovered_at})"
        table.add_row(s.name, f"{s.health.state}: {s.health.reason}", *windows, str(s.queued), str(s.dead), paused,
                      error)  # fmt: skip
    stdout.print(table)


@destinations_app.command("pause")
def pause(name: Name) -> None:
    """Pause a destination: no forwarder takes its forwards (they wait, none is attempted) until it is resumed."""

    async def act(runtime: Runtime) -> None:
        p = await pause_destination(runtime, name, by=_operator())
        typer.echo(f"{name} paused by {p.paused_by} at {iso(p.paused_at)}; its forwards wait")

    _run(act)


@destinations_app.command("resume")
def resume(name: Name) -> None:
    """Resume a paused destination: its waiting forwards go out at once."""

    async def act(runtime: Runtime) -> None:
        ended = await resume_destination(runtime, name, by=_operator())
        if ended is None:
            typer.echo(f"{name} was not paused")
        else:
            typer.echo(f"{name} resumed (paused by {ended.paused_by} at {iso(ended.paused_at)})")

    _run(act)


@destinations_app.command("test")
def test(name: Name) -> None:
    """Send a signed GitHub `ping` to a destination now and print what it answered (exit 1 unless 2xx)."""
    result = _run(lambda runtime: send_test_delivery(runtime, name, by=_operator()))
    answer = f"HTTP {result.status_code}" if result.status_code is not None else result.error
    typer.echo(f"{name}: {answer} in {result.latency * 1000:.0f} ms (delivery {result.delivery_id})")
    if result.response_excerpt:
        typer.echo(result.response_excerpt)
    if not result.delivered:
        raise typer.Exit(ExitCode.FAILED)
