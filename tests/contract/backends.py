"""The backends every contract suite runs against: one registry entry each (tests/contract/README.md).

An entry is an async generator function `(tmp_path, clock) -> AsyncIterator[backend]`: it opens a new, empty
backend whose time is `clock` (a `ManualClock` the test moves), yields it started, and closes it afterwards
(closing twice must be harmless: a test may close it first). What it yields is a `ghingest.ports.Backend`, or an
object with the same attributes for the ports it `provides` (and `resources`).

`provides` names the ports the backend has and the features below; a test asks for what it needs with
`@pytest.mark.needs(...)`, and a backend that lacks one is skipped for that test. What a port itself declares in its
`capabilities` (search, requeue, `single_forwarder`, …) the tests read from the port.

An entry called again in the same test (the `reopen` fixture) opens a backend on the first one's storage: the same
file, database, stream or table (`storage`), as a restart would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ghingest.ports import Backend, ManualClock

PORTS = frozenset(
    {"inbox", "store", "reads", "feed", "forwards", "forward_log", "sessions", "github", "rejections", "audit"}
)
FEATURES = frozenset(
    {
        # Leases, due times (retries, forward backoff) and revocation ends follow the injected clock: a test that
        # moves it sees them run out. (A broker's own timers do not: such a backend leaves this out.)
        "manual_clock",
        # `Inbox.claim(max_bytes=...)` stops right after the delivery that takes the batch past the budget.
        "exact_byte_budget",
        # What the ports wrote is there when the entry opens the backend again in the same test (`reopen`).
        "persistent",
    }
)
EVERYTHING = PORTS | FEATURES

T = TypeVar("T")
Opener = Callable[[Path, ManualClock], AsyncIterator[Any]]


@dataclass(frozen=True)
class Entry:
    open: Opener
    provides: frozenset[str] = EVERYTHING
    marks: tuple[pytest.MarkDecorator, ...] = ()  # e.g. xfail while an adapter is being written


REGISTRY: dict[str, Entry] = {}


def register(
    name: str, *, provides: frozenset[str] = EVERYTHING, marks: tuple[pytest.MarkDecorator, ...] = ()
) -> Callable[[Opener], Opener]:
    unknown = provides - EVERYTHING
    if unknown:
        raise ValueError(f"unknown ports or features: {sorted(unknown)}")

    def add(opener: Opener) -> Opener:
        REGISTRY[name] = Entry(opener, provides, marks)
        return opener

    return add


@contextlib.asynccontextmanager
async def started(backend: Any, *, upgrade: bool = True) -> AsyncIterator[Any]:
    """`backend` migrated (unless it is already) and started; closed afterwards."""
    if upgrade:
        backend.resources.upgrade()
    await backend.resources.start()
    try:
        yield backend
    finally:
        await backend.resources.close()


_STORAGE: dict[Path, Any] = {}  # a test's `tmp_path` -> what its backend's first opening stored its data in


@contextlib.contextmanager
def storage(tmp_path: Path, make: Callable[[], contextlib.AbstractContextManager[T]]) -> Iterator[T]:
    """What `make` creates (a database, a table), once per test: the entry opened again in the same test gets the
    first opening's, so that it opens the same storage (as a restart does); removed with the first opening."""
    if tmp_path in _STORAGE:
        yield _STORAGE[tmp_path]
        return
    with make() as made:
        _STORAGE[tmp_path] = made
        try:
            yield made
        finally:
            del _STORAGE[tmp_path]


# --- memory ---------------------------------------------------------------------------------------------------


@register("memory", provides=EVERYTHING - {"persistent"})
async def memory(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    from ghingest.adapters.memory import open_memory_backend

    async with started(open_memory_backend("memory://", clock=clock)) as backend:
        yield backend


# --- sqlite ---------------------------------------------------------------------------------------------------


@register("sqlite")
async def sqlite(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    from ghingest.adapters.sqlite.database import SqliteDatabase

    async with started(SqliteDatabase(f"sqlite:///{tmp_path / 'contract.db'}", clock=clock).backend()) as backend:
        yield backend


# --- postgres -------------------------------------------------------------------------------------------------


@register("postgres")
async def postgres(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    from ghingest.adapters.postgres import open_postgres_backend
    from tests.postgres_support import fresh_database

    with storage(tmp_path, fresh_database) as url:  # skips without a server (fails under CI); migrated already
        async with started(open_postgres_backend(url, pool_size=4, clock=clock), upgrade=False) as backend:
            yield backend


# --- nats -----------------------------------------------------------------------------------------------------
# The scale-out profile: the inbox on a real 3-node JetStream cluster (tests/nats_cluster.py; a stream of its own per
# test), every other port on PostgreSQL (a fresh database), as `GHINGEST_BUS_URL` with a postgresql:// store
# opens them. Not `manual_clock`: the ack wait (the lease) and nak delays are the server's timers. Not
# `exact_byte_budget`: a pull request's `max_bytes` stops before the budget, not after the delivery that passes it.


@register("nats", provides=EVERYTHING - {"manual_clock", "exact_byte_budget"})
async def nats(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    from ghingest.adapters.nats import JetStreamOptions, NatsInbox, NatsResources, with_nats_inbox
    from ghingest.adapters.postgres import open_postgres_backend
    from tests.nats_cluster import delete_stream, shared_cluster, unique_name
    from tests.postgres_support import fresh_database

    cluster = shared_cluster()

    @contextlib.contextmanager
    def stream_and_database() -> Iterator[tuple[str, str]]:
        stream = unique_name("CONTRACT")
        try:
            with fresh_database() as url:
                yield stream, url
        finally:
            delete_stream(cluster.urls, stream)

    with storage(tmp_path, stream_and_database) as (stream, url):
        options = JetStreamOptions(
            servers=cluster.urls, stream=stream, replicas=3, ack_wait=60.0, max_bytes=64 * 1024 * 1024
        )
        inbox = NatsInbox(options, clock=clock)
        database = open_postgres_backend(url, pool_size=4, clock=clock)
        async with started(with_nats_inbox(database, inbox, NatsResources(inbox))) as backend:
            yield backend


# --- aws ------------------------------------------------------------------------------------------------------
# The serverless profile on a moto server in server mode (tests/aws_support.py: real HTTP, SNS → SQS fan-out, S3):
# one DynamoDB table, topics, queues and a bucket of their own per test. Not `manual_clock`: the lease is the SQS
# visibility timeout and a retry's delay a visibility change, SQS's timers (as JetStream's ack wait for nats).
# Not `exact_byte_budget`: a claim receives up to 10 messages at a time and stops once the budget is passed.


@register("aws", provides=EVERYTHING - {"manual_clock", "exact_byte_budget"})
async def aws(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Backend]:
    from tests.aws_support import aws_backend, fresh_aws

    with storage(tmp_path, lambda: contextlib.nullcontext(fresh_aws("contract"))) as options:
        async with aws_backend(options, clock) as backend:
            yield backend
