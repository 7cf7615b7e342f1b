"""The command line's own options: `--version`, `-h`, and help that shows which variable sets each option."""

from __future__ import annotations

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
