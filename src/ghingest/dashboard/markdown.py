"""Release notes: Markdown (untrusted) to HTML that is safe to put in a page.

markdown-it-py renders CommonMark (+ tables, strikethrough) with raw HTML allowed, because release notes often
carry `<details>` and friends; nh3 (ammonia) then keeps only an allow-list of tags, attributes and URL schemes.
A `<script>`, an `<iframe>`, an `on*=` attribute or a `javascript:` link cannot survive it. Images become links:
the dashboard's pages make no request outside the app, and the page's Content-Security-Policy says so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "span", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "details": {"open"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_MAX_NOTES_CHARS = 200_000


def _image_as_link(_renderer: Any, tokens: Sequence[Token], index: int, _options: Any, _env: Any) -> str:
    token = tokens[index]
    src = str(token.attrGet("src") or "")
    alt = token.content or "image"
    return f'<a href="{escape(src)}">[image: {escape(alt)}]</a>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


_md = _parser()


def render_notes(text: str | None) -> Markup:
    if not text:
        return Markup("")
    html = _md.render(text[:_MAX_NOTES_CHARS])
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
