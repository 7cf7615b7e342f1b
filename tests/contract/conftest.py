"""The backends every port contract runs against. A new adapter adds a parameter here, not new tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ghingest.adapters.sqlite.database import SqliteDatabase
from ghingest.ports import ChangeFeed, ForwardQueue, Inbox, SessionRevocations, Store


@dataclass
class Backend:
    name: str
    inbox: Inbox
    store: Store
    feed: ChangeFeed
    forwards: ForwardQueue
    sessions: SessionRevocations
    database: SqliteDatabase


def _sqlite(tmp_path: Path) -> Iterator[Backend]:
    database = SqliteDatabase(f"sqlite:///{tmp_path / 'contract.db'}")
    database.upgrade()
    database.start()
    try:
        yield Backend(
            "sqlite", database.inbox, database.store, database.feed, database.forwards, database.sessions, database
        )
    finally:
        database.close()


BACKENDS = {"sqlite": _sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from BACKENDS[request.param](tmp_path)
