"""Log lines go to the standard output of the moment, and a line that cannot be written never fails the caller."""

from __future__ import annotations

import io
import sys

import pytest

from ghingest.app.logs import configure_logging, get_logger


class _Out(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")


def test_a_cached_logger_follows_stdout_and_survives_a_closed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("info")
    log = get_logger("ghingest.test")
    first = _Out()
    monkeypatch.setattr(sys, "stdout", first)
    log.warning("first.line")  # the logger is made (and cached) here, on `first`
    assert b"first.line" in first.buffer.getvalue()  # type: ignore[attr-defined]
    first.close()  # as a captured command's output is, once the command is done
    log.warning("dropped.line")  # no "I/O operation on closed file" raised into the caller
    second = _Out()
    monkeypatch.setattr(sys, "stdout", second)
    log.warning("second.line")
    assert b"second.line" in second.buffer.getvalue()  # type: ignore[attr-defined]
