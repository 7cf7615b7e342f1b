"""The one parser each for integers and times from outside, and the places that must not overflow with them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghingest.adapters.sql.queries import fts_query
from ghingest.core.int64 import INT64_MAX, INT64_MIN, is_int64, parse_int64
from ghingest.core.pagination import InvalidCursor, decode_cursor, encode_cursor
from ghingest.core.time import iso_utc, parse_iso, parse_time, time_of
from ghingest.dashboard import charts
from ghingest.dashboard.templating import relative_time, time_tag


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("42", 42), ("-7", -7), ("007", 7), ("0" * 5000 + "1", 1), (str(INT64_MAX), INT64_MAX),
     (str(INT64_MIN), INT64_MIN)],
)  # fmt: skip
def test_parse_int64_reads_ascii_digits_in_range(text: str, value: int) -> None:
    assert parse_int64(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "-", "²", "١٢", "１２", "+1", " 1", "1 ", "1_000", "0x10", "1e3", "1.0", "9" * 5000, str(INT64_MAX + 1),
     str(INT64_MIN - 1), "\x00", "1\x00", "--1"],
)  # fmt: skip
def test_parse_int64_refuses_everything_else(text: str) -> None:
    with pytest.raises(ValueError, match="integer"):
        parse_int64(text)


def test_parse_int64_with_a_minimum() -> None:
    assert parse_int64("0", minimum=0) == 0
    with pytest.raises(ValueError, match="range"):
        parse_int64("-1", minimum=0)


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_parse_int64_never_raises_anything_but_value_error(text: str) -> None:
    try:
        value = parse_int64(text)
    except ValueError:
        return
    assert is_int64(value)
    assert str(value) == str(int(text))


def test_is_int64() -> None:
    assert is_int64(INT64_MAX)
    assert not is_int64(INT64_MAX + 1)
    assert not is_int64(True)
    assert not is_int64(1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00:00Z", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T02:00:00+02:00", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_time_answers_utc(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected
    assert parse_time(text).tzinfo is UTC
    assert parse_iso(text) == expected.timestamp()


@pytest.mark.parametrize(
    "text",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "10000-01-01", "2024-02-30", "", "now", "\x00",
     "2024-05-01\x00", "\ud800"],
)  # fmt: skip
def test_parse_time_refuses_times_outside_the_calendar_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages are datetime's own
        parse_time(text)


def test_time_of_takes_epochs_and_refuses_impossible_ones() -> None:
    assert time_of(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    for epoch in (1e20, -1e20, float("nan"), float("inf")):
        with pytest.raises(ValueError):  # noqa: PT011
            time_of(epoch)
    assert iso_utc(datetime(2024, 5, 1, 2, tzinfo=UTC)) == "2024-05-01T02:00:00Z"


def _cursor(items: list[object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(items).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "items", [[2**63], [-(2**63) - 1], [True], [1.5], ["1"], [[1]], [1, 2]], ids=lambda items: repr(items)[:20]
)
def test_a_cursor_with_an_int_sqlite_cannot_store_is_invalid(items: list[object]) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(_cursor(items), types=(int,))


def test_a_cursor_this_service_made_decodes() -> None:
    assert decode_cursor(encode_cursor([INT64_MAX]), types=(int,)) == (INT64_MAX,)
    assert decode_cursor(encode_cursor(["2024-01-01", 5]), types=(str, int)) == ("2024-01-01", 5)


def test_nul_separates_search_words() -> None:
    assert fts_query("zebra\x00cros") == '"zebra" "cros"*'
    assert fts_query("\x00") == '""'


def test_the_chart_window_stops_at_the_first_day_of_the_calendar() -> None:
    assert charts.window_start("0001-01-01T00:00:00+23:59") == date.min
    assert charts.window_start("0001-03-05T00:00:00Z") == date.min
    assert charts.window_start("9999-12-31T23:59:59-23:59") is not None
    first = charts.window_start("9999-12-31")
    assert first is not None
    assert charts.weekly({"9999-12-31": 1}, first).total == 1


def test_a_time_outside_the_calendar_is_shown_as_given() -> None:
    tag = str(time_tag("9999-12-31T23:59:59-23:59"))
    assert "9999-12-31T23:59:59-23:59" in tag
    assert "invalid date" in tag
    assert "<script>" not in str(time_tag("<script>x</script>"))
    assert str(time_tag(None)) == '<span class="muted">—</span>'
    assert relative_time("9999-12-31T23:59:59-23:59") == "—"
    assert relative_time("9999-12-31T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)) == "in 7981 years"
