"""A least-recently-used cache bounded by entry count and by total weight (e.g. characters)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Not thread-safe: callers that share one across threads hold a lock."""

    def __init__(self, *, max_entries: int, max_weight: int, weigh: Callable[[V], int]) -> None:
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._weigh = weigh
        self.weight = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value` (a value heavier than the whole cache is not kept), dropping the least recently used."""
        weight = self._weigh(value)
        old = self._entries.pop(key, None)
        if old is not None:
            self.weight -= old[1]
        if weight > self._max_weight:
            return
        self._entries[key] = (value, weight)
        self.weight += weight
        while len(self._entries) > self._max_entries or self.weight > self._max_weight:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.weight -= dropped
