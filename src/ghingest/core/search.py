"""Release search as SQLite's FTS5 index reads it (`unicode61 remove_diacritics 2`), with no I/O: a text's tokens,
whether a search text matches a release's fields, and why (`explain`: which fields, and the words in a snippet).

A token is a run of letters and digits, case and diacritics folded. Every word of a search text must occur in one
of the fields: a word of several tokens (`v2.0`) as a phrase, the last word as a prefix (`zep` finds `zeppelin`).
The memory backend searches with `matches`; the dashboard explains each hit with `explain`, from the record, so the
explanation reads the same whichever backend found it (PostgreSQL's `simple` parser splits some words differently:
then a hit may be explained by fewer fields, or by none).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from ghingest.core.releases import ReleaseContent

_TOKEN = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s")
EXPLAINED_CHARS = 50_000  # of a field, searched for the words to show (the notes can be far longer)
SNIPPET_CHARS = 160


@dataclass(frozen=True, slots=True)
class Token:
    text: str  # folded: lower case, without diacritics
    start: int  # its characters in the original text: [start, end)
    end: int


@dataclass(frozen=True, slots=True)
class Segment:
    text: str
    marked: bool  # one of the search's words


@dataclass(frozen=True, slots=True)
class FieldHit:
    """A field that holds some of the search's words, and a snippet of it with those words marked."""

    field: str
    segments: tuple[Segment, ...]


def release_fields(content: ReleaseContent) -> dict[str, str | None]:
    """The fields a release search looks in, by the names an explanation gives them."""
    return {"tag": content.tag, "name": content.name, "notes": content.body}


def _folded(text: str) -> tuple[str, list[int] | None]:
    """`text` folded, and for each folded character the index of the original one (None: the same index)."""
    if text.isascii():
        return text.lower(), None
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for part in unicodedata.normalize("NFKD", char.lower()):
            if not unicodedata.combining(part):
                chars.append(part)
                origin.append(index)
    return "".join(chars), origin


def tokens(text: str) -> list[Token]:
    folded, origin = _folded(text)
    if origin is None:
        return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(folded)]
    return [Token(m.group(), origin[m.start()], origin[m.end() - 1] + 1) for m in _TOKEN.finditer(folded)]


def query_words(text: str) -> list[tuple[str, ...]]:
    """Each whitespace-separated word of a search text as its tokens (a word without any matches nothing; a NUL
    separates words, as `adapters/sql/queries.fts_query` has it)."""
    return [tuple(t.text for t in tokens(word)) for word in text.replace("\x00", " ").split() if word.strip('"')]


def _occurrences(phrase: tuple[str, ...], column: Sequence[Token], *, prefix: bool) -> Iterator[tuple[int, int]]:
    """Where `phrase` occurs in `column`, as character ranges of the original text."""
    if not phrase:
        return
    *whole, last = phrase
    for start in range(len(column) - len(phrase) + 1):
        if all(column[start + n].text == word for n, word in enumerate(whole)):
            token = column[start + len(whole)]
            if token.text == last or (prefix and token.text.startswith(last)):
                yield column[start].start, token.end


def matches(fields: Sequence[str | None], text: str) -> bool:
    """Whether every word of the search `text` occurs in one of `fields`."""
    words = query_words(text)
    if not words:
        return False
    columns = [tokens(field) for field in fields if field]
    return all(
        any(next(_occurrences(word, column, prefix=n == len(words) - 1), None) for column in columns)
        for n, word in enumerate(words)
    )


def explain(fields: Mapping[str, str | None], text: str, *, width: int = SNIPPET_CHARS) -> tuple[FieldHit, ...]:
    """The fields (in the order given) that hold some of the search's words, each with a snippet of at most about
    `width` characters around the first of them, the words marked. Only the first `EXPLAINED_CHARS` of a field are
    searched."""
    words = query_words(text)
    hits = []
    for name, value in fields.items():
        if not value:
            continue
        shown = value[:EXPLAINED_CHARS]
        column = tokens(shown)
        spans = sorted(
            span for n, word in enumerate(words) for span in _occurrences(word, column, prefix=n == len(words) - 1)
        )
        if spans:
            hits.append(FieldHit(name, _snippet(shown, spans, width, cut=len(value) > len(shown))))
    return tuple(hits)


def explain_release(content: ReleaseContent, text: str) -> tuple[FieldHit, ...]:
    return explain(release_fields(content), text)


def _snippet(text: str, spans: list[tuple[int, int]], width: int, *, cut: bool) -> tuple[Segment, ...]:
    first = spans[0][0]
    start = max(0, first - width // 4)
    end = min(len(text), start + width)
    start = max(0, min(start, end - width))
    if start > 0:  # begin at a word
        space = _SPACE.search(text, start, first)
        start = space.end() if space else start
    if end < len(text):  # end at a word
        last_space = max((m.start() for m in _SPACE.finditer(text, spans[0][1], end)), default=end)
        end = last_space
    segments = [Segment("…", False)] if start > 0 else []
    at = start
    for span_start, span_end in spans:
        span_start, span_end = max(span_start, at), min(span_end, end)
        if span_start >= span_end:
            continue
        if span_start > at:
            segments.append(Segment(text[at:span_start], False))
        segments.append(Segment(text[span_start:span_end], True))
        at = span_end
    if at < end:
        segments.append(Segment(text[at:end], False))
    if end < len(text) or cut:
        segments.append(Segment("…", False))
    return tuple(segments)
