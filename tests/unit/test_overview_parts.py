"""The overview's and the event log's pure parts: failure kinds from stored errors, the hourly chart's layout."""

from __future__ import annotations

from ghingest.core.errors import InvalidPayload, PayloadMismatch
from ghingest.core.processing import FailureKind, attempt, describe, failure_kind
from ghingest.dashboard import charts
from ghingest.ports import HourCounts
from tests.contract.support import incoming


def test_failure_kinds_follow_the_error_class() -> None:
    assert failure_kind(describe(PayloadMismatch("a 'release' payload must have a string 'action'"))) == "shape"
    assert failure_kind(describe(InvalidPayload("the body is not JSON"))) is FailureKind.INVALID
    assert failure_kind(describe(TimeoutError("database busy"))) is FailureKind.TRANSIENT
    assert failure_kind(None) is None
    result = attempt(incoming("x", payload={"action": "published"}))  # a release without its release object
    assert failure_kind(getattr(result, "error", None)) is FailureKind.SHAPE


def test_the_hourly_chart_stacks_outcomes_in_24_slots() -> None:
    first = 1_700_000_000.0 - 1_700_000_000.0 % 3600
    counts = [HourCounts(first, 4, 2, 1), HourCounts(first + 5 * 3600, 8, 8, 0), HourCounts(first - 3600, 9, 9, 0)]
    chart = charts.hourly(counts, first, 24, width=480, height=100)
    assert len(chart.bars) == 24
    assert (chart.maximum, chart.totals) == (8, {"received": 12, "processed": 10, "failed": 1, "waiting": 1})
    one = chart.bars[0]
    assert [(s.outcome, s.count) for s in one.segments] == [("processed", 2), ("failed", 1), ("waiting", 1)]
    assert one.segments[0].y + one.segments[0].height == 100  # stacked from the axis up
    assert one.segments[2].y == one.segments[1].y - one.segments[2].height
    assert chart.bars[5].segments[0].height == 96  # the busiest hour fills the height (less the margin)
    assert chart.bars[1].segments == ()
    assert chart.last == first + 23 * 3600
