"""`ghingest replay`: forward stored deliveries again, to their destinations or to a chosen one.

The command selects (delivery, destination) pairs, then creates replay jobs in chunks under a progress bar; the
running `ghingest serve` delivers them (its forwarder polls, so it picks them up within a second) and records each
attempt as a replay. `--dry-run` only shows what would be replayed: the count per destination and the first
deliveries. Nothing selected exits 3, with or without `--dry-run`; an unknown destination is a usage error (2).
The audit log records each replay (as `cli:<user>@<host>`; a dry run changes nothing and is not recorded).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from ghingest.app import audit
from ghingest.app.forward_api import InvalidReplay, ReplayRequest, replay_selection
from ghingest.app.terminal import ExitCode, bad_flag, bar, console, fail, progress, stdout, usage_error
from ghingest.core.time import iso
from ghingest.ports import TargetDelivery
from ghingest.ports.audit import REPLAY

CHUNK = 200
FIRST = 10  # deliveries a dry run lists
FLAGS = {"delivery_id": "--delivery", "event": "--event", "repository": "--repo", "since": "--since",
         "until": "--until", "destination": "--destination", "dead_only": "--dead-only", "to": "--to"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Replayed:
    count: int  # forwards created, or with a dry run, that would be
    by_destination: Counter[str]
    first: Sequence[TargetDelivery]  # a dry run's first deliveries


def replay(
    delivery: Annotated[str | None, typer.Option("--delivery", help="One delivery id.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. release.")] = None,
    repo: Annotated[str | None, typer.Option(help="Repository full name or glob, e.g. 'acme/*'.")] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Received before (ISO-8601).")] = None,
    destination: Annotated[str | None, typer.Option(help="Only forwards that went to this destination.")] = None,
    dead_only: Annotated[bool, typer.Option("--dead-only", help="Only dead-lettered forwards.")] = False,
    to: Annotated[str | None, typer.Option("--to", help="Forward to this destination instead.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the count per destination and the first deliveries; replay nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Forward deliveries again (recorded as replays): one delivery, or a filtered set."""
    from ghingest.app import cli

    cli.iso_flag("--since", since)
    cli.iso_flag("--until", until)
    request = ReplayRequest(
        delivery_id=delivery, event=event, repository=repo, since=since, until=until,
        destination=destination, dead_only=dead_only, to=to, dry_run=dry_run,
    )  # fmt: skip
    settings = cli._settings()
    runtime = cli._runtime(settings, generate=False)

    async def main() -> Replayed:
        await runtime.start()
        try:
            try:
                selection = await replay_selection(runtime, request)
            except InvalidReplay as exc:
                if exc.field is None:
                    raise usage_error(
                        "choose what to replay: " + ", ".join(FLAGS[f] for f in FLAGS if f != "to")
                    ) from None
                raise bad_flag(FLAGS[exc.field], exc.reason) from None
            targets = list(await runtime.backend.forward_log.replay_targets(selection))
            by_destination = Counter(destination for _seq, destination, _route in targets)
            if dry_run:  # changes nothing: not an action the audit log keeps
                first = list(dict.fromkeys(seq for seq, _destination, _route in targets))[:FIRST]
                return Replayed(
                    len(targets), by_destination, await runtime.backend.forward_log.target_deliveries(first)
                )

            async def enqueue() -> dict[str, Any]:
                created = 0
                if targets:
                    with progress(*bar("replaying")) as display:
                        task = display.add_task("replay", total=len(targets))
                        for start in range(0, len(targets), CHUNK):
                            created += await runtime.backend.forwards.enqueue_replays(targets[start : start + CHUNK])
                            display.update(task, completed=min(start + CHUNK, len(targets)))
                return {"queued": created}

            document = audit.replay_selection_document(selection)
            done = await audit.perform(runtime, audit.cli_actor(), REPLAY, document, enqueue)
            if done.entry is None:
                console.print("[yellow]warning:[/yellow] the audit log could not record this replay")
            return Replayed(int(done.result["queued"]), by_destination, ())
        finally:
            await runtime.stop()

    result = asyncio.run(main())
    if as_json:
        typer.echo(orjson.dumps(_json(result, dry_run=dry_run), option=orjson.OPT_INDENT_2).decode())
    elif result.count:
        _print(result, dry_run=dry_run)
    if result.count == 0:
        raise fail("no forward matched", ExitCode.NOTHING_MATCHED)


def _json(result: Replayed, *, dry_run: bool) -> dict[str, object]:
    document: dict[str, object] = {
        "dry_run": dry_run, "count": result.count, "by_destination": dict(sorted(result.by_destination.items())),
    }  # fmt: skip
    if dry_run:
        document["first"] = [
            {"delivery_id": d.delivery_id, "event": d.event, "repository": d.repository,
             "received_at": iso(d.received_at)}
            for d in result.first
        ]  # fmt: skip
    return document


def _print(result: Replayed, *, dry_run: bool) -> None:
    if not dry_run:
        stdout.print(f"replayed {result.count} forwards; a running `ghingest serve` delivers them", highlight=False)
        return
    stdout.print(f"{result.count} forwards would be replayed", highlight=False)
    destinations = Table("destination", "forwards", title="by destination", title_justify="left")
    for name, count in sorted(result.by_destination.items()):
        destinations.add_row(name, str(count))
    stdout.print(destinations)
    deliveries = Table("delivery", "event", "repository", "received", title_justify="left",
                       title=f"first {len(result.first)} deliveries")  # fmt: skip
    for d in result.first:
        deliveries.add_row(d.delivery_id, d.event, d.repository or "", iso(d.received_at))
    stdout.print(deliveries)
