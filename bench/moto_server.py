"""moto's server for `bench/aws_bench.py`: `python bench/moto_server.py PORT`.

One change to moto, to its cost and not its behaviour: its `TransactWriteItems` deep-copies the whole table once
per item of the transaction (the copy is its rollback), so a transaction's time grows with its items times the table and
a bench of a few hundred deliveries times out in moto, not in ghingest. Here each table is copied once per
transaction, which restores the same state on a cancellation.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.server import ThreadedMotoServer


class _OncePerObject:
    """`copy` for the length of one transaction: each object deep-copied once."""

    def __init__(self) -> None:
        self._copies: dict[int, Any] = {}

    def deepcopy(self, obj: Any) -> Any:
        if id(obj) not in self._copies:
            self._copies[id(obj)] = copy.deepcopy(obj)
        return self._copies[id(obj)]


_transact = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_once(self: Any, transact_items: list[dict[str, Any]]) -> None:
    dynamodb_models.copy = _OncePerObject()  # type: ignore[assignment]
    try:
        _transact(self, transact_items)
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_once  # type: ignore[method-assign]

if __name__ == "__main__":
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    server._thread.join()  # serve until killed
