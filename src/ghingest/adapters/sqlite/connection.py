"""Open SQLite connections the way ghingest needs them: WAL, durable commits, foreign keys, a busy timeout."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Literal

Synchronous = Literal["FULL", "NORMAL", "EXTRA"]


def path_from_url(url: str) -> Path:
    """`sqlite:///relative/path.db` or `sqlite:////absolute/path.db` → Path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError("a SQLite database URL starts with 'sqlite:///'")
    return Path(url[len(prefix) :])


def connect(
    path: Path, *, synchronous: Synchronous = "FULL", writer: bool = False, busy_timeout: float = 10.0
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are begun explicitly). `busy_timeout`: how long a statement
    waits for a lock another process holds before it fails (the writer's is short: see `SqliteWriter`).

    The writer connection turns automatic checkpoints off: a checkpointer on a connection of its own runs them
    beside the commits, so that no commit waits for one (see `ghingest.adapters.sqlite.writer`, ADR 0002).
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    _enter_wal(conn)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    if writer:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def _enter_wal(conn: sqlite3.Connection, *, patience: float = 10.0) -> None:
    """Switch to WAL mode. While another connection opens the same file (WAL recovery, or the mode switch of a
    fresh file), SQLite can answer "database is locked" at once instead of calling the busy handler: try again
    for a while rather than fail a start."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
