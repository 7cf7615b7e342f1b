"""The SQLite claim costs the same whatever the backlog: it reads the batch's rows, not every due delivery.

The claim's byte budget is a window function (a running sum of body sizes); written so that the window ran over
every due row before the batch's LIMIT, each claim — on the writer thread that acknowledges deliveries — would
grow with the backlog. Counted in SQLite VM steps (the progress handler), not in seconds: the count does not
depend on how busy the machine is.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ghingest.adapters.sql import migrate
from ghingest.adapters.sqlite.inbox import _CLAIM


def vm_steps_of_a_claim(path: Path, backlog: int) -> int:
    migrate.upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executemany(
        "INSERT INTO deliveries (delivery_id, event, hook_id, content_kind, headers, body, secret_index, received_at)"
        " VALUES (?, 'release', NULL, 'json', '{}', x'7b7d', 0, 0)",
        ((f"d-{n}",) for n in range(backlog)),
    )
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 100)
    claimed = conn.execute(_CLAIM, (60.0, 0.0, 0.0, 200, 16 * 1024 * 1024)).fetchall()
    conn.set_progress_handler(None, 0)
    conn.close()
    assert len(claimed) == 200
    return steps


def test_a_claim_reads_its_batch_not_the_backlog(tmp_path: Path) -> None:
    small = vm_steps_of_a_claim(tmp_path / "small.db", 1_000)
    large = vm_steps_of_a_claim(tmp_path / "large.db", 10_000)
    assert large < 2 * small, f"a claim took {large} steps over 10,000 due deliveries, {small} over 1,000"
