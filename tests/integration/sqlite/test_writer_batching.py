"""The writer merges appends waiting in one group commit into one multi-row INSERT; results stay per row."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from ghingest.adapters.sqlite.writer import InsertIfNew, SqliteWriter

_ROWS = InsertIfNew(table="t", columns=("k", "v"), key="k")


def _writer(tmp_path: Path) -> SqliteWriter:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    conn.close()
    writer = SqliteWriter(path)
    writer.start()
    return writer


def test_rows_of_one_batch_share_a_commit_and_duplicates_are_reported_once(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    async def main() -> list[bool]:
        await writer.insert_if_new(_ROWS, ("old", 0))
        rows = [(f"k{i}", i) for i in range(200)] + [("k7", 7), ("old", 1)]
        return await asyncio.gather(*(writer.insert_if_new(_ROWS, row) for row in rows))

    try:
        commits_before = writer.commits
        results = asyncio.run(main())
        assert results[:200] == [True] * 200
        assert results[200:] == [False, False]  # a key repeated in the batch, and a key stored before
        assert writer.commits - commits_before < 200
    finally:
        writer.close()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("SELECT count(*), sum(v) FROM t").fetchone() == (201, sum(range(200)))


def test_a_bad_row_fails_alone(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    async def main() -> list[bool | BaseException]:
        rows = [("a", 1), ("b", None), ("c", 3)]
        return await asyncio.gather(*(writer.insert_if_new(_ROWS, row) for row in rows), return_exceptions=True)

    try:
        first, bad, last = asyncio.run(main())
    finally:
        writer.close()
    assert first is True
    assert last is True
    assert isinstance(bad, sqlite3.IntegrityError)


def test_a_row_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    try:
        with pytest.raises(ValueError, match="2 values expected"):
            asyncio.run(writer.insert_if_new(_ROWS, ("a",)))
    finally:
        writer.close()


def test_the_wal_is_checkpointed_beside_the_writer_and_restarted_under_sustained_writes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB NOT NULL)")
    conn.close()
    writer = SqliteWriter(path, checkpoint_interval=0.02, wal_restart_frames=200)
    writer.start()
    blob = b"x" * 4000  # about one page per row

    async def main() -> None:
        for batch in range(150):  # ~3,000 pages written, in 150 commits, without a pause
            rows = [(f"k{batch}-{i}", blob) for i in range(20)]
            await asyncio.gather(*(writer.insert_if_new(_BLOBS, row) for row in rows))

    try:
        asyncio.run(main())
        probe = sqlite3.connect(path)
        _, wal_frames, _ = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        probe.close()
        assert writer.commits >= 150
        # Without a restart the WAL would hold every frame written (> 3,000); it was started over, so it holds
        # only what came after the last restart.
        assert wal_frames < 1500
    finally:
        writer.close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3000,)


_BLOBS = InsertIfNew(table="t", columns=("k", "v"), key="k")
