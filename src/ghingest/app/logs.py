"""Structured JSON logs (structlog): one line per record; never a secret, never a body.

Lines go to stdout, except while the command line shows a progress display (`diverted`): then info and debug
lines are dropped and the others go where the display says (above it), so that no line breaks the display.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_divert: Callable[[bytes], None] | None = None  # set while a progress display runs


class _Stdout:
    """The process's standard output as it is when a line is written, not when a logger was made (a logger is
    cached on first use: one made while a command's output was captured must not keep writing there)."""

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)

    def flush(self) -> None:
        sys.stdout.buffer.flush()


class _Lines(structlog.BytesLogger):
    """structlog's bytes logger (it calls the method named after the level), diverted while `_divert` is set. A
    line that cannot be written (stdout closed: the pipe's reader went away) is lost, never raised into the caller:
    logging must not fail a request."""

    __slots__ = ()

    def _emit(self, message: bytes) -> None:
        # ValueError: I/O operation on closed file; AttributeError: a stdout replaced by a text-only stream
        with contextlib.suppress(OSError, ValueError, AttributeError):
            super().msg(message)

    def msg(self, message: bytes) -> None:
        if _divert is None:
            self._emit(message)
        else:
            _divert(message)

    def debug(self, message: bytes) -> None:
        if _divert is None:
            self._emit(message)

    info = debug
    log = warn = warning = fatal = failure = err = error = critical = exception = msg


_STDOUT = _Stdout()


def _lines(*_args: Any) -> _Lines:
    return _Lines(_STDOUT)  # type: ignore[arg-type]


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # orjson renders bytes and the bytes logger writes them as they are: about half the cost per line of
        # `json.dumps` and a print (one line per delivery is written at every processing rate).
        logger_factory=_lines,
        cache_logger_on_first_use=True,
    )


@contextmanager
def diverted(write: Callable[[bytes], None]) -> Iterator[None]:
    """For the duration: drop info and debug lines, and hand the others (one rendered line each) to `write`."""
    global _divert  # one process-wide sink, as stdout is
    previous, _divert = _divert, write
    try:
        yield
    finally:
        _divert = previous


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
