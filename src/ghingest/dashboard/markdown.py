"""Release notes: Markdown (untrusted) to HTML that is safe to put in a page, within a time budget.

markdown-it-py renders CommonMark (+ tables, strikethrough) with raw HTML allowed, because release notes often
carry `<details>` and friends; nh3 (ammonia) then keeps only an allow-list of tags, attributes and URL schemes.
A `<script>`, an `<iframe>`, an `on*=` attribute or a `javascript:` link cannot survive it. Images become links:
the dashboard's pages make no request outside the app, and the page's Content-Security-Policy says so too.

Pure-Python Markdown is slow on some inputs (125,000 `[` take seconds). Rendering checks a deadline at every step
of the parser (each block line, each inline markup character, each post-processing pass) and each inline token of
the output; past the deadline, or past `MAX_NOTES_CHARS`, the notes are shown as escaped plain text
(`plain_notes`). The deadline counts the rendering thread's CPU time, so a busy machine slows a render down but
does not turn it into plain text. Rendering runs off the event loop (`ghingest.dashboard.notes`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
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
MAX_NOTES_CHARS = 125_000  # GitHub's own limit for a release body; longer notes are shown as plain text
RENDER_BUDGET_SECONDS = 1.0  # CPU seconds of the rendering thread; past this, the notes are shown as plain text
_DEADLINE = "ghingest_deadline"  # the key of the render's `_Deadline` in markdown-it's per-render env


class OverBudget(Exception):
    """Rendering went past its deadline."""


class _Deadline:
    """Reads the thread's CPU clock (a system call) at every 32nd check only: each check is a parser step."""

    __slots__ = ("at", "countdown")
    EVERY = 32

    def __init__(self, budget: float) -> None:
        self.at = time.thread_time() + budget
        self.countdown = self.EVERY

    def check(self) -> None:
        self.countdown -= 1
        if self.countdown <= 0:
            self.countdown = self.EVERY
            if time.thread_time() > self.at:
                raise OverBudget


def _check(env: EnvType) -> None:
    deadline = env.get(_DEADLINE)
    if deadline is not None:
        deadline.check()


# One rule per chain (their signatures differ): never matches, raises past the deadline.
def _core_rule(state: StateCore) -> None:
    _check(state.env)


def _block_rule(state: StateBlock, _start: int, _end: int, _silent: bool) -> bool:
    _check(state.env)
    return False


def _inline_rule(state: StateInline, _silent: bool) -> bool:
    _check(state.env)
    return False


def _post_rule(state: StateInline) -> None:
    _check(state.env)


class _BudgetedRenderer(RendererHTML):
    def renderInline(self, tokens: Sequence[Token], options: OptionsDict, env: EnvType) -> str:
        _check(env)
        return super().renderInline(tokens, options, env)


def _image_as_link(_renderer: Any, tokens: Sequence[Token], index: int, _options: Any, _env: Any) -> str:
    token = tokens[index]
    src = str(token.attrGet("src") or "")
    alt = token.content or "image"
    return f'<a href="{escape(src)}">[image: {escape(alt)}]</a>'


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "linkify": False}, renderer_cls=_BudgetedRenderer)
    md.enable(["table", "strikethrough"])
    md.core.ruler.before("normalize", _DEADLINE, _core_rule)
    md.block.ruler.before("table", _DEADLINE, _block_rule)
    md.inline.ruler.after("text", _DEADLINE, _inline_rule)  # at each markup character, not at each letter
    md.inline.ruler2.before("balance_pairs", _DEADLINE, _post_rule)
    md.add_render_rule("image", _image_as_link)
    return md


_md = _parser()


def plain_notes(text: str) -> Markup:
    """The notes as escaped plain text (the first `MAX_NOTES_CHARS` characters)."""
    shown = escape(text[:MAX_NOTES_CHARS])
    more = len(text) - MAX_NOTES_CHARS
    tail = Markup("\n… {:,} more characters (see the raw payload)").format(more) if more > 0 else ""
    return Markup('<pre class="notes-plain">{}{}</pre>').format(shown, tail)


MAX_TABLE_CELLS = 128  # per row: a line with more `|` is text, not a table row


def _narrow_tables(text: str) -> str:
    """Escape the pipes of lines with more than `MAX_TABLE_CELLS` of them. The table rule parses a whole table in
    one step that the deadline cannot interrupt, and its cost grows with the width: 2,000 columns took ~0.4 s of
    CPU on a quick machine, over a second on a slow one. Such a line shows as the text it is."""
    if text.count("|") <= MAX_TABLE_CELLS:
        return text
    lines = text.split("\n")
    return "\n".join(line.replace("|", "\\|") if line.count("|") > MAX_TABLE_CELLS else line for line in lines)


def render_notes(text: str | None, *, budget: float = RENDER_BUDGET_SECONDS) -> Markup:
    """The notes as sanitised HTML; as `plain_notes` when they are too long or take more than `budget` seconds of
    this thread's CPU time. CPU-bound for that long: call it off the event loop (`NotesRenderer`)."""
    if not text:
        return Markup("")
    if len(text) > MAX_NOTES_CHARS:
        return plain_notes(text)
    env: EnvType = {_DEADLINE: _Deadline(budget)}
    try:
        html = _md.render(_narrow_tables(text), env)
    except OverBudget:
        return plain_notes(text)
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above
