"""What the command line shows on the terminal, the same for every command (ADR 0028).

- `App`: the Typer app whose help has no type column for flags (`--dry-run`, not `--dry-run <bool>`).
- `ExitCode`: the one exit-code convention, also printed under `ghingest --help`.
- `bad_flag` / `usage_error` / `fail`: errors that name the flag as it is typed (`--since`), on stderr.
- `progress`: a Rich progress display on stderr with no log line under it (`logs.diverted`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from typer._click import Context, Parameter  # Typer 0.29 carries its own Click: its types are these
from typer._click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup, TyperOption

from ghingest.app import logs

console = Console(stderr=True)  # messages, progress, banners
stdout = Console(width=None if sys.stdout.isatty() else 200)  # results; piped: no wrapping at 80 columns

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(IntEnum):
    OK = 0  # done (with --dry-run: the selection was shown)
    FAILED = 1  # the command ran and something it did failed: not accepted, failed again, a hook's error
    USAGE = 2  # a wrong flag or argument, an unknown destination, an invalid configuration, a taken port
    NOTHING_MATCHED = 3  # the selection (reprocess, replay) matched nothing, with or without --dry-run


EPILOG = (
    "Exit codes: 0 done; 1 ran, but something failed (not accepted, failed again); 2 wrong flags, arguments or"
    " configuration (an unknown destination too); 3 nothing matched the selection (with or without --dry-run)."
)


def _without_flag_types(params: list[Parameter]) -> list[Parameter]:
    """A flag takes no value, so its help shows no type (Typer would print `<bool>`)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return _without_flag_types(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return _without_flag_types(super().get_params(ctx))


class App(typer.Typer):
    """`typer.Typer` with ghingest's settings: `-h`, help when called bare, plain errors, flags without types."""

    def __init__(self, *, help: str, **options: Any) -> None:
        super().__init__(
            help=help,
            cls=Group,
            no_args_is_help=True,
            pretty_exceptions_enable=False,
            context_settings={"help_option_names": ["-h", "--help"]},
            **options,
        )

    def command(self, name: str | None = None, **options: Any) -> Callable[[F], F]:
        options.setdefault("cls", Command)
        decorator: Callable[[F], F] = super().command(name, **options)
        return decorator


def bad_flag(flag: str, message: str) -> typer.BadParameter:
    """`Invalid value for --since: …`: raise it from a command; Typer shows it with the usage and exits 2."""
    return typer.BadParameter(message, param_hint=flag)


def usage_error(message: str) -> UsageError:
    """A wrong combination of flags (none of them alone is wrong): shown with the usage, exit 2."""
    return UsageError(message)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    """Print `error: message` on stderr and return the exit to raise (a configuration error by default)."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def bar(label: str) -> tuple[ProgressColumn, ...]:
    """`label ━━━━━━━━ 40/200 0:00:03`"""
    return TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()


@contextmanager
def progress(*columns: ProgressColumn, transient: bool = False) -> Iterator[Progress]:
    """A progress display on stderr. While it runs no log line is written under it: info lines are dropped,
    warnings and errors are printed above it."""
    with Progress(*columns, console=console, transient=transient) as display:

        def above(line: bytes) -> None:
            display.console.print(line.decode("utf-8", "replace"), markup=False, highlight=False, soft_wrap=True)

        with logs.diverted(above):
            yield display
