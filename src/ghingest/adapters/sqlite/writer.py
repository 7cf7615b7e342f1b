"""One writer thread per database file, committing everything that waits in one transaction (group commit).

Callers hand the writer a function of the connection; the writer runs every function waiting in its queue inside
one `BEGIN IMMEDIATE … COMMIT`, then resolves each caller's future. With `synchronous=FULL` one fsync then covers
a whole batch, which makes power-loss durability cheap at high request rates. A job that raises is rolled back to
its savepoint alone; a commit that fails fails every job of the batch, and none of them is acknowledged.

A second thread checkpoints the WAL in the background, so that no commit pays for a checkpoint.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ghingest.adapters.sqlite.connection import Synchronous, connect
from ghingest.core.errors import StoreUnavailable

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]


@dataclass(slots=True)
class _Job:
    work: Work
    savepoint: bool
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None


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
        checkpoint_interval: float = 1.0,
    ) -> None:
        self._path = path
        self._synchronous: Synchronous = synchronous
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._checkpoint_interval = checkpoint_interval
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._started = False
        self.commits = 0
        self.committed_jobs = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()
            self._checkpointer.start()

    def close(self) -> None:
        if self._started and not self._closed.is_set():
            self._closed.set()
            self._queue.put(None)
            self._thread.join()
            self._checkpointer.join()

    def _enqueue(self, job: _Job) -> None:
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

    def run_sync(self, work: Callable[[sqlite3.Connection], T], *, savepoint: bool = True) -> T:
        """`run` for callers without an event loop (CLI commands)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._enqueue(_Job(work, savepoint, future, None))
        return future.result()

    def _run(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous, writer=True)
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
        finally:
            conn.close()
            self._fail_pending()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        results: list[tuple[_Job, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                results.append(self._run_job(conn, job))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the store could not commit: {exc.__class__.__name__}")
            self._resolve([(job, None, failure) for job in batch])
            return
        self.commits += 1
        self.committed_jobs += len(batch)
        self._resolve(results)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _Job) -> tuple[_Job, Any, BaseException | None]:
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
                pending.append((job, None, WriterClosed("the store is shutting down")))
        self._resolve(pending)

    def _checkpoint_loop(self) -> None:
        conn = connect(self._path, synchronous=self._synchronous)
        try:
            while not self._closed.wait(self._checkpoint_interval):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            with contextlib.suppress(sqlite3.Error):  # best effort: shutdown never waits long for readers
                conn.execute("PRAGMA busy_timeout=200")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
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
