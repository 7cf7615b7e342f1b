"""The in-memory backend: every port over plain Python data structures, for tests and `memory://`.

It is the executable specification of the ports: each behaviour the contract suites (`tests/contract/`) require
is written here as directly as it can be, with the domain logic taken from `ghingest.core` (the release fold,
keyset cursors, forward-state transitions), never rewritten. Time comes from the injected `Clock` (leases, due
times, timestamps), so a `ManualClock` drives it without sleeping. Nothing persists.

- `tables.MemoryDatabase`: the one database every port reads and writes, under one lock.
- `inbox`, `store` (write side), `reads`, `feed`, `forwarding` (queue and log), `sessions`, `github_sync`: one
  port each.
- `backend.open_memory_backend`: a `ghingest.ports.Backend` over a new database.
"""

from ghingest.adapters.memory.backend import MemoryResources, open_memory_backend
from ghingest.adapters.memory.tables import MemoryDatabase

__all__ = ["MemoryDatabase", "MemoryResources", "open_memory_backend"]
