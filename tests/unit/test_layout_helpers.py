"""The layout's helpers without a browser: names that wrap at separators, a search hit's explanation, ISO date
inputs, and which errors answer with an HTML page."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.requests import Request

from ghingest.core import search
from ghingest.core.releases import ReleaseContent
from ghingest.dashboard.errors import PageRoute, wants_page
from ghingest.dashboard.templating import breakable, build_environment, repo_name


def test_a_name_may_wrap_only_after_its_separators() -> None:
    assert breakable("kubernetes-sigs/cluster_api.v2") == "kubernetes-<wbr>sigs/<wbr>cluster_<wbr>api.<wbr>v2"
    assert breakable("octo/") == "octo/"  # nothing to wrap before
    assert breakable("plain") == "plain"
    assert breakable(None) == ""
    assert breakable("<b>/x") == "&lt;b&gt;/<wbr>x"  # escaped, parts and all
    assert repo_name("a/b") == '<span class="repo-name">a/<wbr>b</span>'


def test_tokens_keep_their_place_in_the_original_text() -> None:
    text = "Café déjà-vu ﬁne_tuning"
    found = search.tokens(text)
    assert [t.text for t in found] == ["cafe", "deja", "vu", "fine", "tuning"]  # folded as FTS5's unicode61
    assert [text[t.start : t.end] for t in found] == ["Café", "déjà", "vu", "ﬁne", "tuning"]


@pytest.mark.parametrize(
    ("fields", "text", "expected"),
    [
        (["v2.0.0", "Release", None], "v2.0", True),  # a word of several tokens: a phrase
        (["v1", "Big release", "notes"], "release big", True),  # every word, anywhere
        (["v1", "Big release", "notes"], "release small", False),
        (["v1", None, "Adds zeppelin"], "zep", True),  # the last word as a prefix
        (["v1", None, "Adds zeppelin"], "zep adds", False),  # only the last
        (["v1", None, "zebra crossing"], "zebra\x00cros", True),  # NUL separates words
        (["v1", None, "x"], '-- ""', False),  # no token at all matches nothing
    ],
)
def test_matching_is_the_indexes(fields: list[str | None], text: str, expected: bool) -> None:
    assert search.matches(fields, text) is expected


def _content(**fields: Any) -> ReleaseContent:
    base: dict[str, Any] = dict.fromkeys(ReleaseContent.__slots__)
    return ReleaseContent(**(base | {"draft": False, "prerelease": False} | fields))


def _shown(hit: search.FieldHit) -> str:
    return "".join(f"[{s.text}]" if s.marked else s.text for s in hit.segments)


def test_a_hit_is_explained_field_by_field_with_its_words_marked() -> None:
    content = _content(tag="v2.0.0", name="Zeppelin release", body="Adds the **Zeppelin** mode; zeppelins fly.")
    hits = search.explain_release(content, "zeppelin")
    assert [(h.field, _shown(h)) for h in hits] == [
        ("name", "[Zeppelin] release"),
        ("notes", "Adds the **[Zeppelin]** mode; [zeppelins] fly."),
    ]
    assert [h.field for h in search.explain_release(content, "v2.0 mode")] == ["tag", "notes"]
    assert search.explain_release(content, "nothing") == ()


def test_a_long_note_is_cut_to_a_snippet_around_the_first_hit() -> None:
    body = "lorem ipsum " * 40 + "the zeppelin lands " + "dolor sit " * 40
    (hit,) = search.explain({"notes": body}, "zeppelin", width=60)
    shown = _shown(hit)
    assert shown.startswith("…")
    assert shown.endswith("…")
    assert "[zeppelin]" in shown
    assert len(shown) <= 60 + len("[]……")
    inner = shown.strip("…")
    assert body.find(inner.replace("[", "").replace("]", "")) > 0  # whole words of the original
    assert not inner.startswith(" ")
    assert not inner.endswith(" ")


def test_only_the_first_part_of_a_huge_note_is_searched_for_the_snippet() -> None:
    body = "zeppelin " + "x" * search.EXPLAINED_CHARS + " zeppelin"
    (hit,) = search.explain({"notes": body}, "zeppelin")
    assert hit.segments[-1].text == "…"  # the note goes on past what was searched
    assert search.explain({"notes": "y" * search.EXPLAINED_CHARS + " zeppelin"}, "zeppelin") == ()


def test_the_hit_template_escapes_the_notes() -> None:
    env = build_environment()
    hits = search.explain({"notes": "a <script>alert(1)</script> zeppelin"}, "zeppelin")
    html = env.from_string('{% from "_macros.html" import search_hits %}{{ search_hits(hits) }}').render(hits=hits)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<mark>zeppelin</mark>" in html
    assert 'class="hit-field">notes<' in html


def test_iso_inputs_take_a_date_or_a_time_as_typed() -> None:
    env = build_environment()
    render = env.from_string('{% from "_macros.html" import iso_input %}{{ iso_input("f", "since", v, time=t) }}')
    day = render.render(v='2024-05-01"><script>', t=False)
    assert 'value="2024-05-01&#34;&gt;&lt;script&gt;"' in day
    assert 'pattern="\\d{4}-\\d{2}-\\d{2}"' in day
    assert 'placeholder="YYYY-MM-DD"' in day
    assert "type=" not in day  # text: Chromium shows a type=date input in the locale's form
    moment = render.render(v="2024-05-01T12:00", t=True)
    assert 'placeholder="YYYY-MM-DDTHH:MM"' in moment
    assert 'value="2024-05-01T12:00"' in moment


def _request(path: str, accept: str | None, route: APIRoute | None = None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": headers, "query_string": b""}
    if route is not None:
        scope["route"] = route
    return Request(scope)


async def _page() -> None:
    return None


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("path", "accept", "page_route", "expected"),
    [
        ("/releases/abc", BROWSER, True, True),
        ("/releases/abc", "*/*", True, True),  # a page answers a page
        ("/releases/abc", "application/json", True, False),  # unless JSON is asked for
        ("/no/such/page", BROWSER, False, True),  # a browser's navigation
        ("/no/such/page", "*/*", False, False),  # curl, a webhook sender
        ("/webhooks/github", None, False, False),
        ("/api/releases/abc", BROWSER, False, False),  # the API always answers JSON
        ("/api/releases/abc", "text/html", True, False),
    ],
)
def test_which_errors_answer_with_a_page(path: str, accept: str | None, page_route: bool, expected: bool) -> None:
    route = PageRoute("/x", _page) if page_route else None
    assert wants_page(_request(path, accept, route)) is expected
