"""Release notes within budget: pathological Markdown falls back to plain text after at most its CPU budget,
rendering happens on the pool (never the caller's thread), and rendered notes are cached per (id, content)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from ghingest.core.lru import LRU
from ghingest.dashboard.markdown import MAX_NOTES_CHARS, plain_notes, render_notes
from ghingest.dashboard.notes import NotesRenderer

PATHOLOGICAL = {
    "brackets": "[" * 125_000,
    "image brackets": "![" * 60_000,
    "unclosed links": "[a](" * 30_000,
    "star runs": "*a **a " * 15_000,
    "underscore stars": "_*" * 60_000,
    "angle brackets": "<" * 120_000,
    "entities": "&#" * 60_000,
    "nested quotes": "\n".join(">" * i + " x" for i in range(1, 400)),
    "link reference chain": "".join(f"[r{i}]: /u{i}\n" for i in range(4000)) + " ".join(f"[r{i}]" for i in range(4000)),
    "wide table": "|a" * 2000 + "\n" + "|-" * 2000 + "\n" + ("|x" * 2000 + "\n") * 20,
}
BUDGET = 0.3
# CPU seconds past the deadline: the parser step under way when it passes (each is linear; the longest is one
# block rule over a whole table of 2,000 columns, ~0.4 s), then the sanitiser over the HTML made so far.
SLACK = 0.9


@pytest.fixture
def own_heap() -> Iterator[None]:
    """The render's CPU, not the garbage collector's walks over what the rest of the suite left in this process
    (a full collection over imported SDKs and their models can outlast the slack): what exists now is frozen out of
    collection while the test runs."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("text", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_pathological_notes_render_within_budget_or_as_plain_text(text: str, own_heap: None) -> None:
    assert len(text) <= MAX_NOTES_CHARS
    started = time.thread_time()
    html = str(render_notes(text, budget=BUDGET))
    spent = time.thread_time() - started
    assert spent < BUDGET + SLACK, spent
    assert html.startswith(('<pre class="notes-plain">', "<"))
    assert "<script" not in html


def test_plain_text_is_escaped_and_bounded() -> None:
    html = str(plain_notes("<script>alert(1)</script>"))
    assert html == '<pre class="notes-plain">&lt;script&gt;alert(1)&lt;/script&gt;</pre>'
    long = str(render_notes("x" * (MAX_NOTES_CHARS + 10)))
    assert long.startswith('<pre class="notes-plain">')
    assert "10 more characters" in long
    assert len(long) < MAX_NOTES_CHARS + 200


def test_ordinary_notes_render_as_before() -> None:
    assert str(render_notes("## Hi\n\n* **a**")) == "<h2>Hi</h2>\n<ul>\n<li><strong>a</strong></li>\n</ul>\n"


def test_notes_are_cached_per_release_and_content() -> None:
    async def scenario() -> None:
        notes = NotesRenderer()
        first = await notes.html(1, "**bold**")
        assert str(first) == "<p><strong>bold</strong></p>\n"
        assert await notes.html(1, "**bold**") is first  # cached: the same object, no second render
        assert notes.renders == 1
        assert str(await notes.html(1, "*edited*")) == "<p><em>edited</em></p>\n"
        assert str(await notes.html(2, "**bold**")) == str(first)
        assert notes.renders == 3
        assert await notes.html(3, None) == ""
        assert notes.renders == 3
        notes.close()

    asyncio.run(scenario())


def test_the_event_loop_keeps_turning_while_notes_render() -> None:
    """Rendered on the loop, the render would be one long step: no other task would run until it ends."""

    async def scenario() -> int:
        notes = NotesRenderer()
        render = asyncio.create_task(notes.html(1, "[" * 30_000))
        turns = 0
        while not render.done():
            await asyncio.sleep(0)  # one turn of the loop (a yield, not a wait for time)
            turns += 1
        assert "[[[" in str(await render)  # rendered, or plain text if the machine is too busy
        notes.close()
        return turns

    assert asyncio.run(scenario()) > 100


def test_a_full_render_queue_shows_plain_text_at_once() -> None:
    async def scenario() -> None:
        # A budget far below what the brackets take (about 1 s of CPU here), so that the first render is still
        # running, and then ends as plain text, on a fast machine too.
        notes = NotesRenderer(max_pending=1, budget=0.1)
        slow = asyncio.create_task(notes.html(1, PATHOLOGICAL["brackets"]))
        await asyncio.sleep(0)  # let it submit its render (a yield, not a wait for time)
        queued_behind = await notes.html(2, "**not rendered now**")
        assert str(queued_behind) == '<pre class="notes-plain">**not rendered now**</pre>'
        assert notes.renders == 1
        assert "notes-plain" in str(await slow)
        notes.close()

    asyncio.run(scenario())


def test_lru_is_bounded_by_entries_and_weight() -> None:
    cache: LRU[str, str] = LRU(max_entries=3, max_weight=10, weigh=len)
    for key in "abc":
        cache.put(key, key * 2)
    assert cache.get("a") == "aa"  # now the most recently used
    cache.put("d", "dd")
    assert cache.get("b") is None
    assert [cache.get(k) for k in "acd"] == ["aa", "cc", "dd"]
    cache.put("e", "e" * 8)  # weight 14 > 10: the least recently used go
    assert cache.get("a") is None
    assert cache.get("c") is None
    assert cache.weight <= 10
    cache.put("f", "f" * 11)  # heavier than the whole cache: not kept
    assert cache.get("f") is None
    assert len(cache) == 2
