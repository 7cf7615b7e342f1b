"""moto in server mode, as the tests and `make bench BENCH_PROFILE=aws` run it: `python tests/moto_server.py PORT`.

A process of its own, so that what moto keeps (every test's tables and messages, for the whole session) is never
in the test process's heap — a large heap made the garbage collector's pauses count against other tests' CPU
budgets — and its CPU never counts as the handlers'. Two changes to moto, so that it behaves like DynamoDB:

- Isolation: moto's `TransactWriteItems` takes no lock, and a cancelled transaction restores a copy of the whole
  table taken when it began, which undoes every write another request committed meanwhile (concurrent processors
  lost each other's feed entries). DynamoDB's transactions are isolated: here moto's writes take one lock.
- Cost: that copy is taken once per item of the transaction, so a transaction's time grows with its items times
  the table (a bench of a few hundred deliveries timed out in moto). Here each table is copied once per
  transaction, which restores the same state on a cancellation.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.server import ThreadedMotoServer

_WRITES = ("transact_write_items", "put_item", "update_item", "delete_item", "batch_write_item")


class _OncePerObject:
    """`copy` for the length of one transaction: each object deep-copied once."""

    def __init__(self) -> None:
        self._copies: dict[int, Any] = {}

    def deepcopy(self, obj: Any) -> Any:
        if id(obj) not in self._copies:
            self._copies[id(obj)] = copy.deepcopy(obj)
        return self._copies[id(obj)]


def patch_moto() -> None:
    lock = threading.RLock()
    backend = dynamodb_models.DynamoDBBackend
    transact = backend.transact_write_items

    def transact_copying_once(self: Any, transact_items: list[dict[str, Any]]) -> None:
        dynamodb_models.copy = _OncePerObject()  # type: ignore[assignment]
        try:
            transact(self, transact_items)
        finally:
            dynamodb_models.copy = copy

    backend.transact_write_items = transact_copying_once  # type: ignore[method-assign]
    for name in _WRITES:
        original = getattr(backend, name)

        def isolated(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        setattr(backend, name, isolated)


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    patch_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    threading.Event().wait()  # serve until killed


if __name__ == "__main__":
    main()
