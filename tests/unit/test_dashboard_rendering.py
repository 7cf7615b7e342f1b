"""Dashboard rendering without a server: sanitised notes, the weekly chart, times, avatars, links."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ghingest.dashboard import charts
from ghingest.dashboard.markdown import render_notes
from ghingest.dashboard.security import safe_next
from ghingest.dashboard.templating import absolute_time, initials, relative_time, safe_href

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "[x](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<img src=x onerror="alert(1)">',
    '<iframe src="https://evil.example/"></iframe>',
    '<div onclick="alert(1)">x</div>',
    '<svg onload="alert(1)"></svg>',
    "<style>body{display:none}</style>",
    '<form action="https://evil.example/"><button>go</button></form>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<object data="x.swf"></object><embed src="x.swf">',
    "![x](https://evil.example/pixel.png)",
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">',
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_release_notes_cannot_carry_active_content(attack: str) -> None:
    html = str(render_notes(f"Notes\n\n{attack}\n")).lower()
    for needle in ("<script", "<iframe", "<img", "<svg", "<style", "<form", "<object", "<embed", "<meta"):
        assert needle not in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "")  # left as inert text
    assert "data:text/html" not in html
    assert " on" not in html.replace(" one", "")  # no event-handler attribute


def test_release_notes_keep_ordinary_markdown() -> None:
    html = str(
        render_notes(
            "## Changes\n\n* **bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n[ok](https://example.org)"
        )
    )
    assert "<h2>Changes</h2>" in html
    assert "<strong>bold</strong>" in html
    assert "<table>" in html
    assert 'href="https://example.org"' in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert str(render_notes(None)) == ""


def test_weekly_chart_buckets_days_into_the_window() -> None:
    first = charts.window_start("2024-05-15T10:00:00Z", weeks=4)
    assert first == date(2024, 4, 22)  # Monday three weeks before the week of 2024-05-13
    chart = charts.weekly({"2024-04-22": 2, "2024-04-28": 1, "2024-05-15": 5, "2023-01-01": 9, "bad": 1}, first, 4)
    assert [bar.count for bar in chart.bars] == [3, 0, 0, 5]
    assert chart.maximum == 5
    assert chart.total == 8
    assert chart.bars[1].height == 0
    assert charts.window_start(None) is None
    assert charts.window_start("") is None


def test_times_render_relative_and_absolute() -> None:
    now = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)
    assert relative_time("2024-05-15T11:59:58Z", now) == "just now"
    assert relative_time("2024-05-15T09:00:00Z", now) == "3 hours ago"
    assert relative_time("2024-05-14T12:00:00Z", now) == "1 day ago"
    assert relative_time("2024-05-16T12:00:00Z", now) == "in 1 day"
    assert relative_time(None, now) == "—"
    assert relative_time("not a time", now) == "—"
    assert absolute_time("2024-05-15T11:00:00+02:00") == "2024-05-15 09:00:00 UTC"


def test_only_web_links_from_payloads_become_links() -> None:
    assert safe_href("https://github.com/o/r/releases/tag/v1") == "https://github.com/o/r/releases/tag/v1"
    assert safe_href("javascript:alert(1)") is None
    assert safe_href(None) is None


def test_sign_in_only_continues_to_paths_on_this_site() -> None:
    assert safe_next("/events?status=failed") == "/events?status=failed"
    for target in (None, "", "https://evil.example/", "//evil.example", "/\\evil.example", "events"):
        assert safe_next(target) == "/"


def test_initials() -> None:
    assert initials("octocat") == "OC"
    assert initials("dependabot-preview") == "DP"
    assert initials(None) == "?"
