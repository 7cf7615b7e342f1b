"""One writer thread per database file, committing everything that waits in one transaction (group commit).

Callers hand the writer a function of the connection; the writer runs every function waiting in its queue inside
one `BEGIN IMMEDIATE … COMMIT`, then resolves each caller's future. With `synchronous=FULL` one fsync then covers
a whole batch, which makes power-loss durability cheap at high request rates. A job that raises is rolled back to
its savepoint alone; a commit that fails fails every job of the batch, and none of them is acknowledged.

Rows appended with `insert_if_new` (the inbox's appends) are merged: all such rows of one statement that wait
in a batch go to SQLite as one look-up of their keys and one multi-row `INSERT` of the new ones. Each statement
(and each row a statement returns) gives the GIL away, and the writer must win it back from the busy event loop,
so a batch's appends cost two statements whatever their number (docs/adr/0007-ingest-and-processing-throughput.md).

WAL checkpoints run beside the writer, on a connection of their own (`_Checkpointer`): a `PASSIVE` checkpoint
every `checkpoint_interval` seconds copies committed pages into the database file while the writer goes on
committing. That connection never waits for a lock (busy timeout 0): a checkpoint that meets one is simply skipped
until the next interval, so it cannot put SQLite's busy-handler sleeps into a commit. A WAL is restarted from its
beginning only by a writer that finds it completely checkpointed, which under sustained load never happens by
itself; so when the WAL has grown past `wal_restart_frames`, the writer runs one `PASSIVE` checkpoint itself
between two batches (it copies only what the background checkpoint has not yet), and its next transaction starts
the WAL over. (ADR 0007, addendum 4: this took saturation from ~6,300 to ~8,500 acks/s; checkpoints in the
writer thread itself had stalled every append for ~64 ms, three times a second.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ghingest.adapters.sqlite.connection import Synchronous, connect
from ghingest.core.errors import StoreUnavailable

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]


_MAX_ROWS_PER_STATEMENT = 256
# Seconds a batch waits for the write lock while another process (a `ghingest worker`, a backup) holds it, then
# fails: its callers answer 503 well inside the 10 s GitHub waits for an answer, instead of GitHub timing out.
BUSY_TIMEOUT = 2.0
SWITCH_INTERVAL = 0.0005  # seconds; see SqliteWriter.start


@dataclass(frozen=True, slots=True)
class InsertIfNew:
    """A single-row `INSERT … ON CONFLICT (key) DO NOTHING` that the writer may merge with the other rows for
    the same statement waiting in its batch. Each row's result is whether it was inserted (its key was new)."""

    table: str
    columns: tuple[str, ...]
    key: str

    def one(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> bool:
        """Insert one row unless its key exists; whether it was inserted."""
        return conn.execute(_one_sql(self), row).fetchone() is not None

    def many(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> list[bool]:
        """Insert the rows whose keys are new, in two statements; per row, whether it was inserted.

        Only the writer writes, inside `BEGIN IMMEDIATE`, so nothing can store a key between the look-up and the
        insert. (Two statements whatever the number of rows: `RETURNING` would hand each row back in a step of
        its own, and every step gives the GIL away and must win it back from the busy event loop.)
        """
        key_index = self.columns.index(self.key)
        keys = list(dict.fromkeys(row[key_index] for row in rows))
        seen = {key for (key,) in conn.execute(_existing_sql(self, len(keys)), keys).fetchall()}
        inserted: list[bool] = []
        fresh: list[Any] = []
        for row in rows:
            key = row[key_index]
            new = key not in seen  # a key stored before, or repeated in this batch, is not inserted again
            if new:
                seen.add(key)
                fresh.extend(row)
            inserted.append(new)
        if fresh:
            conn.execute(_many_sql(self, len(fresh) // len(self.columns)), fresh)
        return inserted


@functools.lru_cache(maxsize=64)
def _one_sql(insert: InsertIfNew) -> str:
    values = "(" + ", ".join("?" * len(insert.columns)) + ")"
    return (
        f"INSERT INTO {insert.table} ({', '.join(insert.columns)}) VALUES {values}"  # noqa: S608
        f" ON CONFLICT ({insert.key}) DO NOTHING RETURNING {insert.key}"
    )


@functools.lru_cache(maxsize=1024)
def _many_sql(insert: InsertIfNew, rows: int) -> str:
    values = "(" + ", ".join("?" * len(insert.columns)) + ")"
    return f"INSERT INTO {insert.table} ({', '.join(insert.columns)}) VALUES {', '.join([values] * rows)}"  # noqa: S608


@functools.lru_cache(maxsize=1024)
def _existing_sql(insert: InsertIfNew, keys: int) -> str:
    return f"SELECT {insert.key} FROM {insert.table} WHERE {insert.key} IN ({', '.join('?' * keys)})"  # noqa: S608


@dataclass(slots=True)
class _Job:
    work: Work | None  # None for a row of an `InsertIfNew`
    savepoint: bool
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None
    insert: InsertIfNew | None = None
    row: tuple[Any, ...] = ()


class WriterClosed(StoreUnavailable):
    pass


class SqliteWriter:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "FULL",
        max_batch: int = 1024,
        max_queue: int = 20_000,
        checkpoint_interval: float = 0.25,
        wal_restart_frames: int = 16_384,  # 64 MB of 4 KB pages
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._synchronous: Synchronous = synchronous
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._checkpointer = _Checkpointer(path, synchronous, checkpoint_interval, wal_restart_frames)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._ready = threading.Event()  # the writer's connection is open (or failed to open: `_broken`)
        self._broken: str | None = None  # why the store cannot be opened (each caller gets an exception of its own)
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._started = False
        self.commits = 0
        self.committed_jobs = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            # SQLite runs without the GIL; after each statement the writer must win the GIL back from the event
            # loop. CPython makes a waiting thread wait up to the switch interval (5 ms by default) while another
            # thread runs Python code, so a busy receiver would stall every statement of a group commit.
            if sys.getswitchinterval() > SWITCH_INTERVAL:
                sys.setswitchinterval(SWITCH_INTERVAL)
            self._thread.start()
            self._ready.wait(timeout=30)
            if self._broken is None:
                self._checkpointer.start()

    def close(self) -> None:
        if self._started and not self._closed.is_set():
            self._checkpointer.stop()
            self._closed.set()
            self._queue.put(None)
            self._thread.join()

    def _enqueue(self, job: _Job) -> None:
        if self._broken is not None:
            # A new exception every time: re-raising one object would grow its traceback with every caller's
            # frames (and keep their locals, request bodies included, alive).
            raise StoreUnavailable(self._broken)
        if self._closed.is_set():
            raise WriterClosed("the store is shutting down")
        if self._queue.qsize() >= self._max_queue:
            raise StoreUnavailable("the store's write queue is full")
        self._queue.put(job)

    async def run(self, work: Callable[[sqlite3.Connection], T], *, savepoint: bool = True) -> T:
        """Run `work` in the next group commit; return its result once the commit is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(_Job(work, savepoint, future, loop))
        return await future

    async def insert_if_new(self, insert: InsertIfNew, row: tuple[Any, ...]) -> bool:
        """Insert `row` unless its key exists, in the next group commit; True once durable, False if it existed."""
        if len(row) != len(insert.columns):
            raise ValueError(f"{insert.table}: {len(insert.columns)} values expected, not {len(row)}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._enqueue(_Job(None, False, future, loop, insert, row))
        return await future

    def run_sync(self, work: Callable[[sqlite3.Connection], T], *, savepoint: bool = True) -> T:
        """`run` for callers without an event loop (CLI commands)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Job(work, savepoint, future, None))
        return future.result()

    def _run(self) -> None:
        try:
            conn = connect(self._path, synchronous=self._synchronous, writer=True, busy_timeout=self._busy_timeout)
        except sqlite3.Error as exc:
            self._broken = f"the store cannot be opened: {exc.__class__.__name__}"
            self._closed.set()
            self._ready.set()
            self._fail_pending()
            return
        self._ready.set()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    break
                batch = [job]
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._queue.put(None)
                        break
                    batch.append(more)
                self._commit(conn, batch)
                if self._checkpointer.restart_due.is_set():
                    self._checkpoint_for_restart(conn)
        finally:
            with contextlib.suppress(sqlite3.Error):  # leave a short WAL behind; never wait long for readers
                conn.execute("PRAGMA busy_timeout=200")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            self._fail_pending()

    def _checkpoint_for_restart(self, conn: sqlite3.Connection) -> None:
        """Copy what the background checkpoints have not, so that the next transaction starts the WAL over."""
        with contextlib.suppress(sqlite3.Error):
            busy, wal_frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy and wal_frames == copied:
                self._checkpointer.restart_due.clear()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            i = 0
            while i < len(batch):
                job = batch[i]
                if job.insert is None:
                    results.append(self._run_job(conn, job))
                    i += 1
                    continue
                end = i + 1  # merge the run of rows for the same statement that follows
                while end < len(batch) and end - i < _MAX_ROWS_PER_STATEMENT and batch[end].insert is job.insert:
                    end += 1
                results.extend(self._insert_rows(conn, job.insert, batch[i:end]))
                i = end
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            reason = f"the store could not commit: {exc.__class__.__name__}"
            self._resolve([(job, None, StoreUnavailable(reason)) for job in batch])
            return
        self.commits += 1
        self.committed_jobs += len(batch)
        self._resolve(results)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _Job) -> tuple[_Job, Any, BaseException | None]:
        if job.work is None:
            assert job.insert is not None
            try:
                return job, job.insert.one(conn, job.row), None
            except sqlite3.OperationalError:
                raise
            except Exception as exc:  # the statement was rolled back alone; report to its caller
                return job, None, exc
        if not job.savepoint:
            try:
                return job, job.work(conn), None
            except sqlite3.OperationalError:
                raise
            except Exception as exc:  # the statement was rolled back alone; report to its caller
                return job, None, exc
        conn.execute("SAVEPOINT job")
        try:
            result = job.work(conn)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return job, None, exc
        conn.execute("RELEASE job")
        return job, result, None

    @classmethod
    def _insert_rows(
        cls, conn: sqlite3.Connection, insert: InsertIfNew, jobs: list[_Job]
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        if len(jobs) == 1:
            return [cls._run_job(conn, jobs[0])]
        try:
            inserted = insert.many(conn, [job.row for job in jobs])
        except sqlite3.OperationalError:
            raise
        except sqlite3.Error:  # one bad row: SQLite rolled the statement back; run the rows alone, so only it fails
            return [cls._run_job(conn, job) for job in jobs]
        return [(job, new, None) for job, new in zip(jobs, inserted, strict=True)]

    @staticmethod
    def _resolve(results: Sequence[tuple[_Job, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
        for item in results:
            job = item[0]
            if job.loop is None:
                _settle(item)
            else:
                by_loop.setdefault(job.loop, []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_settle_all, items)

    def _fail_pending(self) -> None:
        pending: list[tuple[_Job, Any, BaseException | None]] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                pending.append((job, None, WriterClosed(self._broken or "the store is shutting down")))
        self._resolve(pending)


class _Checkpointer:
    """`PASSIVE` WAL checkpoints every `interval` seconds on a connection of its own, beside the writer's commits.

    It never waits for a lock: a checkpoint that would is skipped until the next interval. When the WAL holds more
    than `restart_frames` frames it sets `restart_due`, for the writer (see the module's docstring)."""

    def __init__(self, path: Path, synchronous: Synchronous, interval: float, restart_frames: int) -> None:
        self._path = path
        self._synchronous: Synchronous = synchronous
        self._interval = interval
        self._restart_frames = restart_frames
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)
        self.restart_due = threading.Event()
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = connect(self._path, synchronous=self._synchronous)
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error:
            return  # the writer reports a store that cannot be opened; it still checkpoints before it closes
        try:
            while not self._stopping.wait(self._interval):
                try:
                    _, wal_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:  # a lock was held: try again at the next interval
                    continue
                self.checkpoints += 1
                if wal_frames >= self._restart_frames:
                    self.restart_due.set()
        finally:
            conn.close()


def _settle(item: tuple[_Job, Any, BaseException | None]) -> None:
    job, result, error = item
    if job.future.done():  # the caller went away (a cancelled request)
        return
    if error is None:
        job.future.set_result(result)
    else:
        job.future.set_exception(error)


def _settle_all(items: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for item in items:
        _settle(item)
