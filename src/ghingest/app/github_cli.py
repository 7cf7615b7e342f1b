"""`ghingest reconcile` and `ghingest track`: the GitHub REST API commands.

Both run against the configured store and GitHub credentials, print a table to stdout (`--json` for scripts)
and a progress display on stderr while they work. Exit codes (`terminal.ExitCode`): 0 done, 1 done but something
failed (a hook or a repository: see the table), 2 the configuration or the arguments are wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.markup import escape
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ghingest.app.logs import configure_logging
from ghingest.app.settings import ConfigError
from ghingest.app.terminal import ExitCode, bad_flag, bar, console, fail, progress, stdout, usage_error
from ghingest.core.github_hooks import HookRef, InvalidHookRef
from ghingest.core.time import iso
from ghingest.core.tracking import InvalidRepositoryName, TrackedRepository, repository_key

if TYPE_CHECKING:
    from ghingest.app.reconciler import HookReport
    from ghingest.app.runtime import Runtime


def _runtime() -> Runtime:
    from ghingest.app import cli

    settings = cli._settings()
    configure_logging("error")  # the table says what went wrong
    runtime = cli._runtime(settings, migrate=False, generate=False)
    try:
        runtime.github()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    cli._upgrade(settings)
    return runtime


def reconcile(
    hook: Annotated[
        list[str] | None,
        typer.Option(
            "--hook",
            help="A hook to reconcile: repo:OWNER/REPO:HOOK_ID, org:ORG:HOOK_ID or app[:HOOK_ID] (repeatable)."
            " Default: every hook in GHINGEST_RECONCILE_HOOKS.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Find gaps; request and save nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Ask GitHub which deliveries of each hook failed or never reached ghingest, and have them redelivered."""
    try:
        hooks = [HookRef.parse(text) for text in hook] if hook else None
    except InvalidHookRef as exc:
        raise bad_flag("--hook", str(exc)) from None
    runtime = _runtime()
    reconciler = runtime.reconciler(hooks)
    if not reconciler.hooks:
        raise fail("no hook to reconcile: pass --hook or set GHINGEST_RECONCILE_HOOKS")

    async def main() -> list[HookReport]:
        await runtime.start()
        try:
            with progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          transient=True) as display:  # fmt: skip
                task = display.add_task("reading deliveries")

                def show(hook_key: str, read: int) -> None:
                    display.update(task, description=f"{hook_key}: {read} deliveries read")

                return await reconciler.run_once(dry_run=dry_run, progress=show)
        finally:
            await runtime.stop()

    reports = asyncio.run(main())
    if as_json:
        typer.echo(orjson.dumps([_report_json(r) for r in reports], option=orjson.OPT_INDENT_2).decode())
    else:
        _print_reports(reports, dry_run=dry_run)
    if any(r.error for r in reports):
        raise typer.Exit(ExitCode.FAILED)


def _report_json(report: HookReport) -> dict[str, object]:
    return {
        "hook": report.hook, "deliveries_judged": report.seen, "gaps_found": report.found,
        "redeliveries_requested": report.requested, "refused": report.refused, "arrived": report.arrived,
        "still_missing": report.still_missing, "api_requests": report.requests, "error": report.error,
        "would_request": report.would_request,
    }  # fmt: skip


def _print_reports(reports: Sequence[HookReport], *, dry_run: bool) -> None:
    table = Table(title="reconciliation (dry run: nothing requested)" if dry_run else "reconciliation")
    for column in ("hook", "judged", "new gaps", "requested", "refused", "arrived", "still missing", "requests"):
        table.add_column(column, justify="left" if column == "hook" else "right")
    table.add_column("error")
    for r in reports:
        requested = str(len(r.would_request)) + " (would)" if dry_run else str(r.requested)
        table.add_row(r.hook, str(r.seen), str(r.found), requested, str(r.refused), str(r.arrived),
                      str(r.still_missing), str(r.requests), r.error or "")  # fmt: skip
    stdout.print(table)


def track(
    repositories: Annotated[list[str] | None, typer.Argument(help="OWNER/REPO to track (or to stop tracking).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Stop tracking the named repositories.")] = False,
    no_poll: Annotated[bool, typer.Option("--no-poll", help="Add them; let the server poll them when due.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the tracked repositories as JSON.")] = False,
) -> None:
    """Track the releases of repositories by polling (no webhook needed): add them and poll them once now. With
    no repository named, list the tracked ones."""
    names = repositories or []
    try:
        keys = [repository_key(name) for name in names]
    except InvalidRepositoryName as exc:
        raise bad_flag("REPOSITORIES", str(exc)) from None
    if remove and not names:
        raise usage_error("--remove: name the repositories to stop tracking")
    runtime = _runtime()
    failed = False

    async def main() -> list[TrackedRepository]:
        nonlocal failed
        await runtime.start()
        try:
            state = runtime.backend.github
            if remove:
                for key in keys:
                    if not await state.remove_tracked(key):
                        console.print(f"[yellow]not tracked:[/yellow] {escape(key)}")
                        failed = True
                return list(await state.list_tracked())
            tracker = runtime.tracker()
            if names:
                added = await tracker.add(names, added_by="cli")
                if not no_poll:
                    with progress(*bar("polling"), transient=True) as display:
                        task = display.add_task("poll", total=len(added))
                        for record in added:
                            result = await tracker.poll(record)
                            failed = failed or result.error is not None
                            display.advance(task)
            return list(await state.list_tracked())
        finally:
            await runtime.stop()

    tracked = asyncio.run(main())
    if as_json:
        typer.echo(orjson.dumps([_tracked_json(t) for t in tracked], option=orjson.OPT_INDENT_2).decode())
    else:
        _print_tracked(tracked)
    if failed:
        raise typer.Exit(ExitCode.FAILED)


def _tracked_json(t: TrackedRepository) -> dict[str, object]:
    return {
        "repository": t.full_name, "added_by": t.added_by, "last_polled_at": _when(t.last_polled_at),
        "last_status": t.last_status, "last_changed_at": _when(t.last_changed_at), "last_error": t.last_error,
        "next_poll_at": _when(t.next_poll_at), "releases_known": len(t.known), "polls": t.polls,
        "not_modified": t.not_modified,
    }  # fmt: skip


def _when(epoch: float | None) -> str | None:
    return iso(epoch) if epoch else None


def _print_tracked(tracked: Sequence[TrackedRepository]) -> None:
    if not tracked:
        stdout.print("no repository is tracked: `ghingest track OWNER/REPO` adds one")
        return
    table = Table(title=f"tracked repositories ({len(tracked)})")
    for column in ("repository", "added by", "last poll", "status", "releases", "next poll", "error"):
        table.add_column(column)
    for t in tracked:
        table.add_row(t.full_name, t.added_by, _when(t.last_polled_at) or "never", str(t.last_status or ""),
                      str(len(t.known)), _when(t.next_poll_at) or "", t.last_error or "")  # fmt: skip
    stdout.print(table)
