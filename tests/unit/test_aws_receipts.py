"""The AWS inbox's receipt numbers: ordered by receipt time, strictly increasing within a process, tagged."""

from __future__ import annotations

from ghingest.adapters.aws.receipts import TAG_BITS, ReceiptNumbers
from ghingest.core.int64 import INT64_MAX


def test_receipt_numbers_follow_the_receipt_time_and_never_repeat_in_a_burst() -> None:
    numbers = ReceiptNumbers(tag=5)
    burst = [numbers.next(1_800_000_000.0) for _ in range(1000)]  # one microsecond, a thousand receipts
    assert burst == sorted(set(burst))
    later = numbers.next(1_800_000_001.0)
    assert later > burst[-1]
    assert {n & ((1 << TAG_BITS) - 1) for n in [*burst, later]} == {5}


def test_two_processes_order_by_time_and_differ_by_their_tag() -> None:
    first, second = ReceiptNumbers(tag=1), ReceiptNumbers(tag=2)
    assert first.next(1_800_000_000.0) < second.next(1_800_000_000.000002)
    assert first.next(1_800_000_005.0) != second.next(1_800_000_005.0)


def test_a_receipt_number_fits_an_int64_for_centuries() -> None:
    assert ReceiptNumbers(tag=(1 << TAG_BITS) - 1).next(7_000_000_000.0) <= INT64_MAX  # the year 2191
