"""The command line's own options: `--version`, `-h`, and help that shows which variable sets each option."""

from __future__ import annotations

import re
from typing import Any

import typer
from typer.testing import CliRunner

import ghingest
from ghingest.app.cli import app


def test_version_and_short_help() -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0
    assert version.output.strip() == f"ghingest {ghingest.__version__}"
    short = runner.invoke(app, ["serve", "-h"])
    assert short.exit_code == 0
    assert "Usage:" in short.output
    assert runner.invoke(app, ["-h"]).exit_code == 0


def test_help_shows_the_environment_variable_of_an_option() -> None:
    output = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    assert "[env GHINGEST_HOST]" in output
    assert "[env GHINGEST_PORT]" in output


def _command_paths() -> list[list[str]]:
    """Every command and group of the app, as the words that name it (`[]` is `ghingest` itself)."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name in getattr(command, "commands", {}) or {}:
            walk(command.commands[name], [*path, name])

    walk(root, [])
    return paths


def test_every_help_shows_flags_without_a_type_and_keeps_the_env_hints() -> None:
    runner = CliRunner()
    paths = _command_paths()
    hints = 0
    assert {"replay", "send", "users hash", "db upgrade"} <= {" ".join(path) for path in paths}
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, path
        assert "<bool>" not in result.output, path
        assert "\\[env" not in result.output, path
        for hint in re.findall(r"\\\[env (GHINGEST_\w+)\]", _sources_of(path)):
            assert f"[env {hint}]" in result.output, (path, hint)
            hints += 1
    assert hints >= 6  # serve, receiver and dashboard: --host and --port
    flags = runner.invoke(app, ["replay", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--dry-run\s+Show the count", flags)  # no type column for a flag
    assert re.search(r"--since\s+<str>", flags)  # a value's type stays


def _sources_of(path: list[str]) -> str:
    """The help texts the command's options were declared with (where `\\[env …]` is written escaped)."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return " ".join(getattr(p, "help", None) or "" for p in command.params)


def test_the_root_help_states_the_exit_codes() -> None:
    output = " ".join(CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output.split())
    for code in ("0 done", "1 ran, but something failed", "2 wrong flags", "3 nothing matched"):
        assert code in output
