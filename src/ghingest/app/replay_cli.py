"""`ghingest replay`: forward stored deliveries again, to their destinations or to a chosen one.

The command selects (delivery, destination) pairs, then creates replay jobs in chunks under a progress bar; the
running `ghingest serve` delivers them (its forwarder polls, so it picks them up within a second) and records each
attempt as a replay. `--dry-run` only counts. The audit log records each replay (`cli:<user>@<host>`).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ghingest.app import audit
from ghingest.app.forward_api import ReplayRequest, replay_selection
from ghingest.ports.audit import REPLAY

CHUNK = 200


def replay(
    delivery: Annotated[str | None, typer.Option("--delivery", help="One delivery id.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. release.")] = None,
    repo: Annotated[str | None, typer.Option(help="Repository full name or glob, e.g. 'acme/*'.")] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Received before (ISO-8601).")] = None,
    destination: Annotated[str | None, typer.Option(help="Only forwards that went to this destination.")] = None,
    dead_only: Annotated[bool, typer.Option("--dead-only", help="Only dead-lettered forwards.")] = False,
    to: Annotated[str | None, typer.Option("--to", help="Forward to this destination instead.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be replayed.")] = False,
) -> None:
    """Forward deliveries again (recorded as replays): one delivery, or a filtered set."""
    from ghingest.app import cli
    from ghingest.app.runtime import Runtime
    from ghingest.app.settings import ConfigError

    settings = cli._settings()
    try:
        runtime = Runtime.build(settings, run_worker=False, generate_credentials=False)
    except ConfigError as exc:
        cli.console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    request = ReplayRequest(
        delivery_id=delivery, event=event, repository=repo, since=since, until=until,
        destination=destination, dead_only=dead_only, to=to, dry_run=dry_run,
    )  # fmt: skip
    try:
        selection = replay_selection(runtime, request)
    except ValueError as exc:
        message = str(exc).replace("delivery_id", "--delivery").replace("dead_only", "--dead-only")
        cli.console.print(f"[red]error:[/red] {message}")
        raise typer.Exit(2) from None
    cli._upgrade(settings)

    async def enqueue() -> dict[str, Any]:
        forwards = runtime.backend.forwards
        targets = list(await runtime.backend.forward_log.replay_targets(selection))
        created = 0
        with Progress(
            TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=cli.console
        ) as progress:
            task = progress.add_task("replay", total=len(targets))
            for start in range(0, len(targets), CHUNK):
                created += await forwards.enqueue_replays(targets[start : start + CHUNK])
                progress.update(task, completed=min(start + CHUNK, len(targets)))
        return {"queued": created}

    async def main() -> int:
        await runtime.start()
        try:
            if dry_run:  # changes nothing: not an action the audit log keeps
                return len(await runtime.backend.forward_log.replay_targets(selection))
            document = audit.replay_selection_document(selection)
            done = await audit.perform(runtime, audit.cli_actor(), REPLAY, document, enqueue)
            if done.entry is None:
                cli.console.print("[yellow]warning:[/yellow] the audit log could not record this replay")
            return int(done.result["queued"])
        finally:
            await runtime.stop()

    count = asyncio.run(main())
    if dry_run:
        typer.echo(f"{count} forwards would be replayed")
        return
    if count == 0:
        cli.console.print("no forward matched")
        raise typer.Exit(1)
    typer.echo(f"replayed {count} forwards; a running `ghingest serve` delivers them")
