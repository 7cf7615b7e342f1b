"""Receipt numbers (`seq`) without a round trip on the request path.

A counter item would cost the receiver one more DynamoDB call per delivery (and make one item every receiver
writes). A receipt number is instead the receipt time in microseconds, shifted left by 10 bits, with a random tag
of this process (a Lambda container) in those bits: it orders deliveries by receipt time across every container,
is strictly increasing within a process (a burst in one microsecond takes the next ones), and fits an int64
until the year 2255. Two containers can draw the same number only if they share a tag (1 in 1,024) and receive in
the same microsecond; such a tie orders the two deliveries arbitrarily in the event lists, and nothing else
(numbers are no item's key: the delivery id is).
"""

from __future__ import annotations

import secrets
import threading

TAG_BITS = 10


class ReceiptNumbers:
    def __init__(self, tag: int | None = None) -> None:
        self._tag = secrets.randbelow(1 << TAG_BITS) if tag is None else tag
        self._last = 0
        self._lock = threading.Lock()

    def next(self, received_at: float) -> int:
        with self._lock:
            micros = max(int(received_at * 1_000_000), self._last + 1)
            self._last = micros
        return micros << TAG_BITS | self._tag


RECEIPTS = ReceiptNumbers()  # one per process: every inbox of the process draws from it
