"""The dashboard's pages over real HTTP: lists, filters, detail with sanitised notes, events, reprocess, live."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import orjson

from tests.conftest import ThreadedServer, post_webhook, release, signed, wait_until
from tests.contract.support import polled
from tests.dashboard_support import csrf_of, session_client

EVIL_NOTES = (
    "## Fixes\n\n<script>alert('notes')</script>\n\n[click me](javascript:alert('link'))\n\n"
    '<img src=x onerror="alert(\'img\')">\n\n<iframe src="https://evil.example/"></iframe>\n\n'
    '<a href="https://example.org/" onclick="alert(\'click\')">a link</a>\n\n'
    "![logo](https://evil.example/logo.png)\n"
)


def _post(
    server: ThreadedServer, payload: dict[str, object] | bytes, *, event: str = "release", delivery_id: str
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert post_webhook(client, signed(payload, event=event, delivery_id=delivery_id)).status_code == 202


def _processed(server: ThreadedServer, delivery_id: str) -> None:
    wait_until(lambda: server.runtime and _status(server, delivery_id) in ("processed", "failed"))


def _status(server: ThreadedServer, delivery_id: str) -> str | None:
    with session_client(server) as client:
        response = client.get(f"/api/deliveries/{delivery_id}")
        return str(response.json()["status"]) if response.status_code == 200 else None


def _notes_section(html: str) -> str:
    match = re.search(r'<div class="notes">(.*?)</div>\s*</section>', html, re.S)
    assert match, "no notes section"
    return match.group(1)


def test_releases_page_lists_filters_and_searches(server: ThreadedServer) -> None:
    _post(server, release(release_id=1, tag="v1.0.0", repository_name="octo-org/alpha"), delivery_id="r1")
    _post(
        server,
        release(release_id=2, tag="v2.0.0-rc1", repository_name="octo-org/beta", prerelease=True, body="zebra"),
        delivery_id="r2",
    )
    _processed(server, "r1")
    _processed(server, "r2")
    with session_client(server) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "octo-org/alpha" in page.text
        assert "octo-org/beta" in page.text
        assert "Content-Security-Policy" in page.headers
        assert "<svg" in page.text  # the per-week chart, drawn inline
        only_beta = client.get("/", params={"repo": "octo-org/beta"}).text
        assert "v2.0.0-rc1" in only_beta
        assert "v1.0.0" not in only_beta
        assert "pre-release" in only_beta
        not_pre = client.get("/", params={"pre": "no"}).text
        assert "v1.0.0" in not_pre
        assert "v2.0.0-rc1" not in not_pre
        searched = client.get("/", params={"q": "zebr"}).text
        assert "v2.0.0-rc1" in searched
        assert "v1.0.0" not in searched
        ranged = client.get("/", params={"since": "2030-01-01"}).text
        assert "No release matches these filters." in ranged
        assert client.get("/", params={"since": "not a date"}).status_code == 200
        assert client.get("/", params={"cursor": "garbage!"}).status_code == 400
        names = client.get("/ui/repositories", params={"q": "octo-org/b"}, headers={"Accept": "application/json"})
        assert names.json() == ["octo-org/beta"]
        assert client.get("/ui/repositories", params={"q": "alp"}).json() == ["octo-org/alpha"]


def test_keyset_pages_walk_every_release_once(server: ThreadedServer) -> None:
    for n in range(55):
        stamp = f"2024-05-{1 + n // 24:02d}T{n % 24:02d}:00:00Z"
        payload = release(release_id=100 + n, tag=f"v0.{n}", created_at=stamp, published_at=stamp)
        _post(server, payload, delivery_id=f"k{n}")
    _processed(server, "k54")
    with session_client(server) as client:
        wait_until(lambda: client.get("/api/releases", params={"limit": 200}).json()["items"].__len__() == 55)
        first = client.get("/").text
        older = re.search(r'rel="next" href="([^"]+)"', first)
        assert older
        second = client.get(older.group(1).replace("&amp;", "&")).text
        tags = re.findall(r'class="tag" href="/releases/\d+">([^<]+)<', first + second)
        assert len(tags) == 55 == len(set(tags))


def test_release_detail_renders_notes_inert_with_history_and_payloads(server: ThreadedServer) -> None:
    _post(server, release(release_id=7, action="created", body=EVIL_NOTES), delivery_id="evil-1")
    _post(server, release(release_id=7, action="published", body=EVIL_NOTES), delivery_id="evil-2")
    _processed(server, "evil-2")
    with session_client(server) as client:
        page = client.get("/releases/7")
        assert page.status_code == 200
        notes = _notes_section(page.text)
        assert "<h2>Fixes</h2>" in notes
        lowered = notes.lower()
        for needle in ("<script", "<iframe", "<img", 'evil.example/"'):
            assert needle not in lowered, needle
        tags = re.findall(r"<[^>]+>", lowered)
        assert not [t for t in tags if "javascript:" in t or re.search(r"\son\w+\s*=", t)], tags
        assert "[image: logo]" in notes  # images become plain links to their address
        assert 'href="https://example.org/"' in notes
        assert "evil-1" in page.text
        assert "evil-2" in page.text
        assert "&#34;tag_name&#34;" in page.text or "&quot;tag_name&quot;" in page.text  # raw payloads, escaped
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/releases/999").status_code == 404


def _append_polled(server: ThreadedServer, digest: str, **fields: object) -> str:
    """Enter a polled release as the poller does: appended to the inbox (the receiver refuses `poll:` ids)."""
    delivery = polled(digest, **fields)
    loop = server.server.servers[0].get_loop()
    appended = asyncio.run_coroutine_threadsafe(
        server.runtime.backend.inbox.append(delivery, received_at=time.time()), loop
    )
    assert appended.result(timeout=10) is True
    return delivery.delivery_id


def test_release_rows_and_pages_show_where_their_history_came_from(server: ThreadedServer) -> None:
    stamp = dict(created_at="2024-05-01T10:00:00Z", published_at="2024-05-02T10:00:00Z")
    _post(server, release(release_id=41, tag="v41", body="notes", **stamp), delivery_id="hook-41")
    _post(server, release(release_id=42, tag="v42", **stamp), delivery_id="hook-42")
    _processed(server, "hook-41")
    edited = _append_polled(server, "e1", release_id=41, tag="v41", action="edited", body="edited", **stamp)
    same = _append_polled(server, "s1", release_id=42, tag="v42", **stamp)  # what the webhook said: no entry
    _processed(server, edited)
    _processed(server, same)
    with session_client(server) as client:
        listed = client.get("/").text
        rows = dict(re.findall(r'data-key="release-(\d+)">(.*?)</li>', listed, re.S))
        assert "polled" in rows["41"]
        assert "polled" not in rows["42"]
        page = client.get("/releases/41").text
        history = re.findall(r'badge-source-(\w+)">(\w+)</span>.*?<code>([^<]+)</code>', page, re.S)
        assert [(source, delivery_id) for source, _, delivery_id in history] == [
            ("webhook", "hook-41"), ("poll", edited)
        ]  # fmt: skip
        assert 'class="badge badge-polled"' in page
        other = client.get("/releases/42").text
        assert re.findall(r'badge-source-(\w+)"', other) == ["webhook"]
        assert same not in other.split("Raw payloads")[0]
        api = client.get("/api/releases/41").json()
        assert api["sources"] == ["webhook", "poll"]
        assert [h["source"] for h in api["history"]] == ["webhook", "poll"]
        listed_sources = {r["id"]: r["sources"] for r in client.get("/api/releases").json()["items"]}
        assert listed_sources == {41: ["webhook", "poll"], 42: ["webhook"]}


def test_repository_page_has_its_timeline_and_chart(server: ThreadedServer) -> None:
    _post(server, release(release_id=11, tag="v1", repository_name="octo-org/gamma"), delivery_id="g1")
    _post(server, release(release_id=12, tag="v9", repository_name="octo-org/delta"), delivery_id="g2")
    _processed(server, "g2")
    _processed(server, "g1")
    with session_client(server) as client:
        page = client.get("/repos/octo-org/gamma")
        assert page.status_code == 200
        assert '/releases/11"' in page.text
        assert '/releases/12"' not in page.text
        assert "<svg" in page.text
        assert 'class="bar"' in page.text


def test_events_page_shows_failures_and_reprocesses_them(server: ThreadedServer) -> None:
    _post(server, release(release_id=21), delivery_id="ok-1")
    bad = orjson.dumps({"action": "published", "release": {"tag_name": "no id"}})
    _post(server, bad, delivery_id="bad-1")
    _processed(server, "bad-1")
    _processed(server, "ok-1")
    with session_client(server) as client:
        page = client.get("/events")
        assert page.status_code == 200
        assert 'class="is-failed"' in page.text
        assert "must have a &#39;release&#39; object" in page.text or "must have a" in page.text
        failed_only = client.get("/events", params={"status": "failed"}).text
        assert "bad-1" in failed_only
        assert "ok-1" not in failed_only
        assert "ok-1" not in client.get("/events", params={"action": "created"}).text
        delivery = client.get("/deliveries/bad-1")
        assert "x-github-delivery" in delivery.text.lower()
        assert "no id" in delivery.text
        before = client.get("/api/deliveries/bad-1").json()["processed_at"]
        response = client.post(
            "/deliveries/bad-1/reprocess",
            data={"csrf_token": csrf_of(page.text), "next": "/events?status=failed"},
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith("/events?status=failed&flash=")
        # The worker takes it again (and fails again, for good: the payload is still wrong), and the page says so.
        wait_until(lambda: client.get("/api/deliveries/bad-1").json()["processed_at"] not in (before, None))
        after = client.get(response.headers["location"]).text
        assert "Reprocessed: failed again: PayloadMismatch" in after


def test_live_stream_sends_changes_after_the_given_point(server: ThreadedServer) -> None:
    with session_client(server) as client:
        start = client.get("/")
        seq = re.search(r'data-live-seq="(\d+)"', start.text)
        assert seq
        _post(server, release(release_id=31, tag="v-live"), delivery_id="live-1")
        _processed(server, "live-1")
        seen: list[str] = []
        with client.stream("GET", "/live", params={"after": seq.group(1)}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                seen.append(line)
                if line.startswith("data:") and '"31"' in line:
                    break
        assert "event: release" in seen
        # Resuming with Last-Event-ID sends only what came later.
        last = max(int(line[4:]) for line in seen if line.startswith("id: "))
        with client.stream("GET", "/live", headers={"Last-Event-ID": str(last)}) as stream:
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            assert next(lines) == ""
            assert next(lines) == f"id: {last}"
            assert next(lines) == "event: hello"
