"""The webhook source allow-list against a real `/meta` over HTTP (`tests.meta_stub`): the conditional fetch, the
disk cache, the refresh and its failures; and through a real server, the webhook route refusing a source before
reading a byte of its body, behind trusted proxies or not, while every other route is left alone."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ghingest.adapters.github.meta import API_VERSION, NOT_MODIFIED, MetaClient, MetaHooks, MetaUnavailable, meta_url
from ghingest.app.hook_allowlist import CACHE_FILE, HookAllowlist, read_cache
from ghingest.app.metrics import Metrics
from ghingest.app.receiver import Verdict
from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from ghingest.core.networks import MAX_META_BYTES, parse_networks
from tests.conftest import TOKEN, ThreadedServer, free_port, post_webhook, release, signed, wait_until
from tests.meta_stub import ERROR_TEXT, GITHUB_HOOKS, MetaStub

LOOPBACK_HOOKS = ["127.0.0.0/8", *GITHUB_HOOKS]  # the test client (127.0.0.1) is one of GitHub's


@pytest.fixture
def meta() -> Iterator[MetaStub]:
    with MetaStub() as stub:
        yield stub


def counter(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def allowlist_for(meta: MetaStub, tmp_path: Path, **options: Any) -> HookAllowlist:
    allowlist = HookAllowlist(
        metrics=options.pop("metrics", Metrics()),
        meta=MetaClient(options.pop("api_url", meta.url), timeout=options.pop("timeout", 5.0)),
        cache_path=tmp_path / CACHE_FILE,
        **options,
    )
    allowlist.load_cache()
    return allowlist


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the fetch -------------------------------------------------------------------------------------------------------


def test_the_fetch_is_one_unauthenticated_conditional_get(meta: MetaStub) -> None:
    async def main() -> tuple[Any, Any]:
        client = MetaClient(meta.url)
        try:
            first = await client.fetch()
            assert isinstance(first, MetaHooks)
            return first, await client.fetch(etag=first.etag)
        finally:
            await client.aclose()

    first, second = run(main())
    assert first.networks == parse_networks(GITHUB_HOOKS)
    assert first.etag == meta.etag()
    assert second is NOT_MODIFIED
    plain, conditional = meta.requests
    assert plain["accept"] == "application/vnd.github+json"
    assert plain["x-github-api-version"] == API_VERSION == "2022-11-28"
    assert plain["user-agent"].startswith("ghingest/")
    assert "authorization" not in plain
    assert "cookie" not in plain
    assert "if-none-match" not in plain
    assert conditional["if-none-match"] == meta.etag()


def test_github_enterprise_server_s_meta_is_under_api_v3(meta: MetaStub) -> None:
    async def main() -> Any:
        client = MetaClient(meta.url + "/api/v3/")
        try:
            return await client.fetch()
        finally:
            await client.aclose()

    assert meta_url(meta.url + "/api/v3/") == f"{meta.url}/api/v3/meta"
    assert run(main()).networks == parse_networks(GITHUB_HOOKS)


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 403}, "HTTP 403"),  # the unauthenticated rate limit
        ({"body": b"<html>" + ERROR_TEXT.encode() + b"</html>"}, "the body is not JSON"),
        ({"body": orjson.dumps({"hooks": ["192.30.252.0/22", ERROR_TEXT]})}, "hooks entry 2: not an IPv4"),
        ({"body": orjson.dumps({"hooks": [ERROR_TEXT] * 5000})}, "more than the 4096 accepted"),
        ({"body": orjson.dumps({"message": ERROR_TEXT})}, "lists no `hooks` networks"),
        ({"body": b'{"hooks": ["' + b"x" * MAX_META_BYTES + b'"]}'}, f"over {MAX_META_BYTES}"),
        ({"delay": 1.0}, "no complete answer within 0.5 s"),
    ],
)
def test_a_failed_fetch_says_why_without_quoting_the_answer(meta: MetaStub, setup: dict[str, Any], reason: str) -> None:
    for name, value in setup.items():
        setattr(meta, name, value)

    async def main() -> Any:
        client = MetaClient(meta.url, timeout=0.5 if "delay" in setup else 5.0)
        try:
            return await client.fetch()
        finally:
            await client.aclose()

    with pytest.raises(MetaUnavailable, match=reason) as raised:
        run(main())
    assert ERROR_TEXT not in str(raised.value)


def test_an_unreachable_meta_is_named_by_the_error_s_class() -> None:
    async def main() -> Any:
        client = MetaClient(f"http://127.0.0.1:{free_port()}")
        try:
            return await client.fetch()
        finally:
            await client.aclose()

    with pytest.raises(MetaUnavailable, match="ConnectError"):
        run(main())


# --- the allow-list: cache and refresh -------------------------------------------------------------------------------


def refreshes(allowlist: HookAllowlist, between: Callable[[int], None] | None = None, *, times: int = 1) -> list[bool]:
    """`times` refreshes on one event loop (the client's pool belongs to it), `between(i)` before the i-th."""

    async def main() -> list[bool]:
        results = []
        try:
            for i in range(times):
                if between is not None:
                    between(i)
                results.append(await allowlist.refresh())
        finally:
            await allowlist.aclose()
        return results

    outcomes: list[bool] = run(main())
    return outcomes


def test_a_refresh_adopts_the_list_and_keeps_it_on_disk_atomically(meta: MetaStub, tmp_path: Path) -> None:
    metrics = Metrics()
    allowlist = allowlist_for(meta, tmp_path, metrics=metrics)
    assert allowlist.verdict("192.30.252.9") is Verdict.UNKNOWN
    assert allowlist.not_ready() is not None
    assert refreshes(allowlist) == [True]
    assert allowlist.verdict("192.30.252.9") is Verdict.ALLOWED
    assert allowlist.verdict("::ffff:140.82.112.1") is Verdict.ALLOWED
    assert allowlist.verdict("203.0.113.5") is Verdict.REFUSED
    assert allowlist.verdict(None) is Verdict.REFUSED
    assert allowlist.not_ready() is None
    cached = read_cache(tmp_path / CACHE_FILE, url=f"{meta.url}/meta")
    assert (cached.hooks, cached.etag) == (parse_networks(GITHUB_HOOKS), meta.etag())
    assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILE]  # no temporary file left behind
    assert counter(metrics, "ghingest_github_meta_refreshes_total", result="ok") == 1
    assert counter(metrics, "ghingest_webhook_allowed_networks") == len(GITHUB_HOOKS)
    assert counter(metrics, "ghingest_github_meta_checked_timestamp_seconds") == pytest.approx(time.time(), abs=60)


def test_a_304_keeps_the_list_and_a_change_replaces_it(meta: MetaStub, tmp_path: Path) -> None:
    metrics = Metrics()
    allowlist = allowlist_for(meta, tmp_path, metrics=metrics)
    verdicts = []

    def between(i: int) -> None:
        verdicts.append(allowlist.verdict("192.30.252.9"))
        if i == 2:
            meta.hooks = ["203.0.113.0/24"]

    assert refreshes(allowlist, between, times=3) == [True, True, True]
    assert verdicts == [Verdict.UNKNOWN, Verdict.ALLOWED, Verdict.ALLOWED]  # the 304 kept it
    assert meta.requests[1]["if-none-match"] == meta.requests[2]["if-none-match"]
    assert counter(metrics, "ghingest_github_meta_refreshes_total", result="not_modified") == 1
    assert counter(metrics, "ghingest_github_meta_refreshes_total", result="ok") == 2
    assert allowlist.verdict("192.30.252.9") is Verdict.REFUSED
    assert allowlist.verdict("203.0.113.5") is Verdict.ALLOWED
    assert read_cache(tmp_path / CACHE_FILE, url=f"{meta.url}/meta").hooks == parse_networks(["203.0.113.0/24"])


@pytest.mark.parametrize(
    "failure",
    [{"status": 502}, {"body": b'{"hooks": []}'}, {"body": b'{"hooks": ["0.0.0.0/0", 1]}'}],
    ids=["error", "empty", "hostile"],
)
def test_a_failed_refresh_keeps_the_last_good_list(meta: MetaStub, tmp_path: Path, failure: dict[str, Any]) -> None:
    metrics = Metrics()
    allowlist = allowlist_for(meta, tmp_path, metrics=metrics)

    def between(i: int) -> None:
        if i == 1:
            for name, value in failure.items():
                setattr(meta, name, value)

    assert refreshes(allowlist, between, times=2) == [True, False]
    assert allowlist.verdict("192.30.252.9") is Verdict.ALLOWED
    assert allowlist.verdict("203.0.113.5") is Verdict.REFUSED
    assert allowlist.not_ready() is None
    assert counter(metrics, "ghingest_github_meta_refreshes_total", result="error") == 1
    assert read_cache(tmp_path / CACHE_FILE, url=f"{meta.url}/meta").hooks == parse_networks(GITHUB_HOOKS)


def test_the_disk_cache_survives_a_restart_with_meta_down(meta: MetaStub, tmp_path: Path) -> None:
    refreshes(allowlist_for(meta, tmp_path))
    meta.stop()
    again = allowlist_for(meta, tmp_path)  # a new process: the cache is read when the allow-list is built
    assert again.verdict("192.30.252.9") is Verdict.ALLOWED
    assert again.not_ready() is None
    assert refreshes(again) == [False]
    assert again.verdict("192.30.252.9") is Verdict.ALLOWED


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"version": 1, "url": "URL", "etag": null, "checked_at": 1.0, "hooks": "192.30.252.0/22"}',
        b'{"version": 1, "url": "URL", "etag": null, "checked_at": 1.0, "hooks": []}',
        b'{"version": 1, "url": "URL", "etag": "no quotes", "checked_at": 1.0, "hooks": ["192.30.252.0/22"]}',
        b'{"version": 1, "url": "URL", "etag": null, "checked_at": true, "hooks": ["192.30.252.0/22"]}',
        b'{"version": 2, "url": "URL", "etag": null, "checked_at": 1.0, "hooks": ["192.30.252.0/22"]}',
        b'{"version": 1, "url": "https://elsewhere.example/meta", "checked_at": 1.0, "hooks": ["192.30.252.0/22"]}',
    ],
    ids=["empty", "not-json", "hooks-string", "hooks-empty", "bad-etag", "bad-time", "version", "other-url"],
)
def test_a_corrupt_cache_file_is_ignored(meta: MetaStub, tmp_path: Path, content: bytes) -> None:
    (tmp_path / CACHE_FILE).write_bytes(content.replace(b"URL", f"{meta.url}/meta".encode()))
    allowlist = allowlist_for(meta, tmp_path)
    assert allowlist.hooks is None
    assert allowlist.verdict("192.30.252.9") is Verdict.UNKNOWN
    assert refreshes(allowlist) == [True]  # and the next good answer replaces the file
    assert read_cache(tmp_path / CACHE_FILE, url=f"{meta.url}/meta").hooks == parse_networks(GITHUB_HOOKS)


def test_the_configured_networks_are_accepted_even_before_github_s_list(meta: MetaStub, tmp_path: Path) -> None:
    meta.status = 500
    allowlist = allowlist_for(meta, tmp_path, static=parse_networks(["10.20.0.0/16"]))
    refreshes(allowlist)
    assert allowlist.verdict("10.20.1.2") is Verdict.ALLOWED
    assert allowlist.verdict("192.30.252.9") is Verdict.UNKNOWN
    reason = allowlist.not_ready()
    assert reason is not None
    assert "HTTP 500" in reason
    assert ERROR_TEXT not in reason


def test_run_refreshes_periodically_retries_a_failure_sooner_and_stops_at_once(meta: MetaStub, tmp_path: Path) -> None:
    meta.status = 500
    allowlist = allowlist_for(meta, tmp_path, interval=0.3, retry_base_delay=0.05)

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():  # noqa: ASYNC110 - state the stub and the task change, no event to wait on
            await asyncio.sleep(0.02)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(allowlist.run(stop))
        await until(lambda: len(meta.requests) >= 2)  # failed, and retried within the backoff
        meta.status = None
        await until(lambda: allowlist.hooks is not None)
        meta.hooks = ["203.0.113.0/24"]
        await until(lambda: allowlist.verdict("203.0.113.5") is Verdict.ALLOWED)  # the next periodic refresh
        meta.delay = 2.0  # a fetch in flight when the process stops is abandoned
        await asyncio.sleep(0.5)
        stop.set()
        started = time.monotonic()
        await task
        assert time.monotonic() - started < 1.0

    run(asyncio.wait_for(main(), 10))


def test_a_fresh_cache_is_not_fetched_again_at_start(meta: MetaStub, tmp_path: Path) -> None:
    refreshes(allowlist_for(meta, tmp_path))
    fetched = len(meta.requests)
    allowlist = allowlist_for(meta, tmp_path, interval=60.0)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(allowlist.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await task

    run(main())
    assert len(meta.requests) == fetched
    assert allowlist.retry_after() >= 1


# --- through the server --------------------------------------------------------------------------------------------

Serve = Callable[..., ThreadedServer]


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Iterator[Serve]:
    running: list[ThreadedServer] = []

    def start(*, allowlist: HookAllowlist | None = None, **overrides: Any) -> ThreadedServer:
        runtime = Runtime.build(make_settings(**overrides))
        runtime.hook_allowlist = allowlist
        server = ThreadedServer(runtime).__enter__()
        running.append(server)
        return server

    yield start
    for server in running:
        server.__exit__(None, None, None)


def on(meta: MetaStub, **overrides: Any) -> dict[str, Any]:
    return {"github_hooks_allowlist": True, "github_api_url": meta.url, **overrides}


def ready(server: ThreadedServer) -> None:
    wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200)


def deliver(server: ThreadedServer, **headers: str) -> httpx.Response:
    request = signed(release())
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return client.post("/webhooks/github", content=request.body, headers={**request.headers, **headers})


def test_off_by_default_nothing_changes(meta: MetaStub, serve: Serve) -> None:
    server = serve(github_api_url=meta.url)
    assert server.runtime.hook_allowlist is None
    assert deliver(server).status_code == 202
    assert deliver(server, **{"X-Forwarded-For": "203.0.113.5"}).status_code == 202
    assert meta.requests == []


def test_a_delivery_from_github_s_networks_is_accepted(meta: MetaStub, serve: Serve) -> None:
    meta.hooks = LOOPBACK_HOOKS
    server = serve(**on(meta))
    ready(server)
    assert deliver(server).status_code == 202


def test_a_source_outside_the_list_gets_403_before_its_body_is_read(meta: MetaStub, serve: Serve) -> None:
    server = serve(**on(meta), max_body_bytes=4096)
    ready(server)
    refused = deliver(server)
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden_source",
        "detail": "deliveries are accepted only from GitHub's webhook addresses",
    }
    assert refused.headers["connection"] == "close"
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # What would be 401 (a wrong signature), 413 (over the cap) or 400 (no headers) once the body is read.
        unsigned = client.post("/webhooks/github", content=b"{}", headers={"X-GitHub-Event": "ping"})
        too_large = post_webhook(client, signed(b"{" + b" " * 8192 + b"}"))
        assert (unsigned.status_code, too_large.status_code) == (403, 403)
        assert client.get("/webhooks/github").status_code == 403
    # A body announced and never sent: the answer comes at once, not after the body timeout.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-GitHub-Event: ping\r\nX-GitHub-Delivery: d-1\r\nContent-Length: 1000000\r\n\r\n"
        )
        started = time.monotonic()
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 403 ")
        assert time.monotonic() - started < 2
    # The other routes are not the webhook's: no allow-list there.
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/releases").status_code == 200
        text = client.get("/metrics").text
    assert 'ghingest_rejections_total{code="forbidden_source"} 5.0' in text
    assert 'ghingest_deliveries_total{event="unverified",outcome="rejected"} 5.0' in text


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "status"),
    [
        ("127.0.0.1", "192.30.252.9", 202),  # through the trusted proxy: GitHub's address
        ("127.0.0.1", "203.0.113.5", 403),
        ("127.0.0.1", "192.30.252.9, 203.0.113.5", 403),  # GitHub's address written by the client itself
        ("127.0.0.1", "203.0.113.5, 192.30.252.9, 127.0.0.1", 202),  # the right-most that is not a proxy
        ("127.0.0.1", "::ffff:192.30.252.9", 202),
        ("127.0.0.1", "unknown", 403),
        ("10.0.0.5", "192.30.252.9", 403),  # from a peer that is not a trusted proxy: the header is ignored
        ("", "192.30.252.9", 403),
    ],
)
def test_forwarded_for_counts_only_from_a_trusted_proxy(
    meta: MetaStub, serve: Serve, proxies: str, forwarded_for: str, status: int
) -> None:
    server = serve(**on(meta, trusted_proxies=proxies))
    ready(server)
    assert deliver(server, **{"X-Forwarded-For": forwarded_for}).status_code == status


def test_503_while_no_list_was_ever_loaded_then_served_once_one_is(
    meta: MetaStub, serve: Serve, tmp_path: Path
) -> None:
    meta.hooks = LOOPBACK_HOOKS
    meta.status = 500
    allowlist = HookAllowlist(
        metrics=Metrics(),
        meta=MetaClient(meta.url),
        cache_path=tmp_path / "data" / CACHE_FILE,
        retry_base_delay=0.5,
    )
    server = serve(**on(meta), allowlist=allowlist)
    wait_until(lambda: len(meta.requests) >= 1)
    unknown = deliver(server)
    assert unknown.status_code == 503
    assert unknown.json()["error"] == "source_unknown"
    assert 1 <= int(unknown.headers["retry-after"]) <= 300
    readiness = httpx.get(f"{server.url}/readyz", timeout=5)
    assert readiness.status_code == 503
    assert "webhook source allow-list is not loaded" in readiness.json()["detail"]
    assert "HTTP 500" in readiness.json()["detail"]
    meta.status = None  # GitHub answers again: the retry comes within the backoff, no restart needed
    ready(server)
    assert deliver(server).status_code == 202


def test_the_list_kept_on_disk_serves_a_restart_with_meta_down(meta: MetaStub, serve: Serve) -> None:
    meta.hooks = LOOPBACK_HOOKS
    first = serve(**on(meta))
    ready(first)
    first.__exit__(None, None, None)
    meta.stop()
    again = serve(**on(meta))
    assert httpx.get(f"{again.url}/readyz", timeout=5).status_code == 200  # at once: no fetch was needed
    assert deliver(again).status_code == 202


def test_a_corrupt_cache_with_meta_down_is_503_and_not_ready(
    meta: MetaStub, serve: Serve, make_settings: Callable[..., Settings]
) -> None:
    data_dir = make_settings().data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CACHE_FILE).write_bytes(b'{"version": 1, "hooks": ["127.0.0.0/8"')
    meta.stop()
    server = serve(**on(meta))
    assert deliver(server).status_code == 503
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503


@pytest.mark.parametrize(("networks", "status"), [("127.0.0.1/32, 2001:db8::/32", 202), ("192.0.2.0/24", 403)])
def test_configured_networks_alone_need_no_meta(meta: MetaStub, serve: Serve, networks: str, status: int) -> None:
    server = serve(github_api_url=meta.url, webhook_allowed_networks=networks)
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    assert deliver(server).status_code == status
    assert meta.requests == []


def test_configured_networks_add_to_github_s(meta: MetaStub, serve: Serve) -> None:
    server = serve(**on(meta, webhook_allowed_networks="127.0.0.1"))
    ready(server)
    assert deliver(server).status_code == 202
    assert server.runtime.hook_allowlist is not None
    assert len(server.runtime.hook_allowlist.networks) == len(GITHUB_HOOKS) + 1


class FixedVerdict:
    def __init__(self, verdict: Verdict) -> None:
        self.value = verdict

    def verdict(self, host: str | None) -> Verdict:
        return self.value

    def retry_after(self) -> int:
        return 42


@pytest.mark.parametrize(("verdict", "status"), [(Verdict.REFUSED, 403), (Verdict.UNKNOWN, 503)])
def test_the_receiver_answers_a_refused_source_without_calling_receive(
    make_settings: Callable[..., Settings], verdict: Verdict, status: int
) -> None:
    from ghingest.app.receiver import WebhookReceiver

    runtime = Runtime.build(make_settings(database_url="memory://"))
    receiver = WebhookReceiver(
        runtime.backend.inbox,
        runtime.backend.store,
        secrets=[b"a-webhook-secret"],
        metrics=runtime.metrics,
        sources=FixedVerdict(verdict),
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    request = signed(release())
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/webhooks/github",
        "client": ("203.0.113.5", 4711),
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()],
    }
    run(receiver(scope, receive, send))
    assert sent[0]["status"] == status
    headers = dict(sent[0]["headers"])
    assert headers[b"connection"] == b"close"
    assert (headers.get(b"retry-after") == b"42") is (status == 503)


def test_a_slow_refresh_never_delays_an_acknowledgement(
    meta: MetaStub, serve: Serve, make_settings: Callable[..., Settings]
) -> None:
    meta.hooks = LOOPBACK_HOOKS
    cache = make_settings().data_dir / CACHE_FILE
    refreshes(allowlist_for(meta, cache.parent))
    kept = orjson.loads(cache.read_bytes())
    cache.write_bytes(orjson.dumps({**kept, "checked_at": 1.0}))  # confirmed long ago: fetched again at start
    meta.delay = 2.0
    server = serve(**on(meta))
    wait_until(lambda: len(meta.requests) >= 2)  # the refresh at start is in flight, waiting on GitHub
    started = time.monotonic()
    assert deliver(server).status_code == 202
    assert time.monotonic() - started < 1.0
