"""A WHERE clause built from optional filters: fixed SQL fragments, every value a bound parameter."""

from __future__ import annotations

from typing import Any


class Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def add(self, clause: str, value: Any) -> None:
        """Add `clause` (with one `?` placeholder) bound to `value`, unless `value` is None."""
        if value is not None:
            self.clauses.append(clause)
            self.params.append(value)

    def when(self, condition: bool, clause: str) -> None:
        """Add a clause without parameters when `condition` holds."""
        if condition:
            self.clauses.append(clause)

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1 = 1"
