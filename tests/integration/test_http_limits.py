"""HTTP limits over real sockets (README "Limits"): deadlines, head caps, the connection cap, body caps and
authentication before an `/api` body. Each test bounds its own wall time: every read has a deadline."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from ghingest.app.runtime import Runtime
from ghingest.app.settings import Settings
from tests.conftest import TOKEN, ThreadedServer, post_webhook, release, signed, wait_until

SHORT = 0.5  # the configured timeouts, seconds
MARGIN = 2.5  # how late a cut may come on a loaded 2-core machine
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def connect(server: ThreadedServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


_pending: dict[int, bytes] = {}  # bytes read past an answer, per socket (pipelined answers)


def read_answer(sock: socket.socket, *, timeout: float = 5.0) -> Answer:
    """Read one answer (a sized body); fail if none is complete within `timeout`."""
    deadline = time.monotonic() + timeout
    data = _pending.pop(sock.fileno(), b"")

    def more() -> bytes:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no complete answer within {timeout} s: {data!r}") from None

    while b"\r\n\r\n" not in data:
        chunk = more()
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = more()
        assert chunk, "the connection closed in the middle of the answer"
        body += chunk
    if body[length:]:
        _pending[sock.fileno()] = body[length:]
    return Answer(int(lines[0].split()[1]), headers, body[:length])


def closed_by_server(sock: socket.socket, *, timeout: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `timeout`, reading and dropping any data."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def trickle(sock: socket.socket, data: bytes, *, interval: float, timeout: float) -> tuple[Answer, float]:
    """Send `data` one byte every `interval` s until an answer arrives; return it and when it came (monotonic)."""
    deadline = time.monotonic() + timeout
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            break
        assert time.monotonic() < deadline, "the server never cut the trickling client"
    else:
        raise AssertionError("all of the data went through without the server cutting it")
    answer = read_answer(sock)
    return answer, time.monotonic()


@pytest.fixture
def start(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., ThreadedServer]]:
    servers: list[ThreadedServer] = []

    def start_server(**overrides: Any) -> ThreadedServer:
        server = ThreadedServer(Runtime.build(make_settings(**overrides))).__enter__()
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.__exit__(None, None, None)


# --- deadlines --------------------------------------------------------------------------------------------------


def test_a_trickled_head_is_cut_with_408_while_a_webhook_on_another_connection_is_acknowledged(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start(http_header_timeout=SHORT)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        opened = time.monotonic()
        slow = connect(server)
        slow.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")
        assert post_webhook(client, signed(release(), delivery_id="meanwhile")).status_code == 202
        answer, answered = trickle(slow, b"X-Slow: " + b"a" * 500 + b"\r\n\r\n", interval=0.05, timeout=10)
        assert answer.status == 408
        assert answer.json()["error"] == "request_timeout"
        assert answer.headers["connection"] == "close"
        assert SHORT - 0.1 <= answered - opened < SHORT + MARGIN
        assert closed_by_server(slow, timeout=5)
        slow.close()


def test_a_connection_that_sends_nothing_is_cut_after_the_header_timeout(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start(http_header_timeout=SHORT)
    with connect(server) as silent:
        opened = time.monotonic()
        answer = read_answer(silent, timeout=SHORT + MARGIN)
        assert answer.status == 408
        assert time.monotonic() - opened >= SHORT - 0.1
        assert closed_by_server(silent, timeout=5)


@pytest.mark.parametrize("target", ["webhook", "api"])
def test_a_trickled_body_is_cut_with_408_while_a_webhook_on_another_connection_is_acknowledged(
    start: Callable[..., ThreadedServer], target: str
) -> None:
    server = start(http_body_timeout=SHORT)
    if target == "webhook":
        request = signed(release(), delivery_id="slow-body")
        headers = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items()).encode()
        body = request.body
        head = b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n" + headers
    else:
        body = orjson.dumps({"dead_only": True, "dry_run": True, "destination": "x" * 200})
        head = b"POST /api/replays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + AUTH
    head += b"Content-Length: %d\r\n\r\n" % len(body)
    with httpx.Client(base_url=server.url, timeout=10) as client, connect(server) as slow:
        slow.sendall(head)
        sent_head = time.monotonic()
        assert post_webhook(client, signed(release(), delivery_id="meanwhile")).status_code == 202
        answer, answered = trickle(slow, body, interval=0.05, timeout=10)
        assert answer.status == 408
        assert answer.json()["error"] == "request_timeout"
        assert SHORT - 0.1 <= answered - sent_head < SHORT + MARGIN
        assert closed_by_server(slow, timeout=5)
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        assert api.get("/api/deliveries/slow-body").status_code == 404
        assert api.get("/api/deliveries/meanwhile").status_code == 200


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start(http_keep_alive_timeout=SHORT)
    with connect(server) as idle:
        for _ in range(2):  # the connection is reused while it is not idle for long
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(idle).status == 200
        answered = time.monotonic()
        assert closed_by_server(idle, timeout=SHORT + MARGIN)
        assert time.monotonic() - answered >= SHORT - 0.1


def test_pipelined_requests_in_one_write_are_all_answered(start: Callable[..., ThreadedServer]) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /readyz HTTP/1.1\r\nHo")
        assert [read_answer(sock).status for _ in range(3)] == [200, 200, 200]
        sock.sendall(b"st: x\r\n\r\n")
        assert read_answer(sock).status == 200


# --- the head ---------------------------------------------------------------------------------------------------


def _get(extra_headers: bytes, *, end: bool = True) -> bytes:
    return b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + extra_headers + (b"\r\n" if end else b"")


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        pytest.param(_get(b"X-Big: " + b"a" * 60_000 + b"\r\n"), None, id="a 60 KB head is served"),
        pytest.param(_get(b"X-Big: " + b"a" * 70_000 + b"\r\n"), "header_too_large", id="a 70 KB head"),
        pytest.param(
            _get(b"X-Endless: " + b"a" * 200_000, end=False), "header_too_large", id="a header line that never ends"
        ),
        pytest.param(_get(b"".join(b"X-H%d: v\r\n" % i for i in range(99))), None, id="100 headers are served"),
        pytest.param(_get(b"".join(b"X-H%d: v\r\n" % i for i in range(100))), "too_many_headers", id="101 headers"),
    ],
)
def test_the_head_is_capped_by_size_and_header_count_with_431(
    start: Callable[..., ThreadedServer], request_bytes: bytes, reason: str | None
) -> None:
    status = 200 if reason is None else 431
    server = start()  # the defaults: 64 KiB, 100 header fields
    with connect(server) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock)
        assert answer.status == status
        if status == 431:
            assert answer.json()["error"] == "request_header_fields_too_large"
            assert closed_by_server(sock, timeout=5)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    for counted in ("header_too_large", "too_many_headers"):
        assert (f'ghingest_http_refusals_total{{reason="{counted}"}} 1.0' in metrics) == (counted == reason)


# --- connections ------------------------------------------------------------------------------------------------


def test_a_request_past_the_connection_limit_gets_a_json_503_with_retry_after(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start(http_max_connections=2)
    held = [connect(server), connect(server)]
    try:
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_answer(sock).status == 200  # both are open (keep-alive) and counted
        with connect(server) as third:
            third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_answer(third)
            assert answer.status == 503
            assert answer.json()["error"] == "service_unavailable"
            assert answer.headers["retry-after"] == "5"
            assert closed_by_server(third, timeout=5)
        held.pop().close()
        wait_until(lambda: httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200, timeout=10)
    finally:
        for sock in held:
            sock.close()


# --- bodies off the webhook route -------------------------------------------------------------------------------

REPLAYS = b"POST /api/replays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("auth", "status", "error"),
    [
        (b"", 401, "unauthorized"),
        (b"Authorization: Bearer wrong-token-0123\r\n", 401, "unauthorized"),
        (AUTH, 413, "payload_too_large"),
    ],
)
def test_a_huge_declared_api_body_is_answered_before_a_byte_of_it_is_sent(
    start: Callable[..., ThreadedServer], auth: bytes, status: int, error: str
) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(REPLAYS + auth + b"Content-Length: 200000000\r\n\r\n")  # the head only
        answer = read_answer(sock)
        assert answer.status == status
        assert answer.json()["error"] == error
        assert closed_by_server(sock, timeout=5)


def test_an_unauthenticated_chunked_api_body_is_refused_after_its_first_chunk(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(REPLAYS + b"Transfer-Encoding: chunked\r\n\r\n" + b"4000\r\n" + b" " * 0x4000 + b"\r\n")
        answer = read_answer(sock)
        assert answer.status == 401
        assert answer.headers["www-authenticate"] == "Bearer"


def test_an_authenticated_chunked_api_body_is_cut_with_413_as_soon_as_it_crosses_the_cap(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start()  # the default cap: 64 KiB
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"  # 16 KiB
    sent = 0
    with connect(server) as sock:
        sock.sendall(REPLAYS + AUTH + b"Transfer-Encoding: chunked\r\n\r\n")
        while sent < 4 * 1024 * 1024:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 0x4000
            if select.select([sock], [], [], 0.05)[0]:
                break
        answer = read_answer(sock)
        assert answer.status == 413
        assert answer.json()["error"] == "payload_too_large"
        assert sent <= 64 * 1024 + 4 * 0x4000  # cut at the cap, not buffered whole
    assert 'ghingest_http_refusals_total{reason="body_too_large"} 1.0' in httpx.get(f"{server.url}/metrics").text


def test_small_api_bodies_still_work_declared_or_chunked(start: Callable[..., ThreadedServer]) -> None:
    server = start()
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        declared = api.post("/api/replays", json={"dead_only": True, "dry_run": True})
        assert declared.status_code == 200, declared.text
        assert declared.json() == {"count": 0, "dry_run": True}

        def pieces() -> Iterator[bytes]:
            yield b'{"dead_only": true, '
            yield b'"dry_run": true}'

        chunked = api.post("/api/replays", content=pieces(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 200, chunked.text
        assert chunked.json() == {"count": 0, "dry_run": True}
        assert api.post("/api/replays", content=b"{", headers={"Content-Type": "application/json"}).status_code == 400


def test_a_dashboard_form_over_the_cap_is_refused_with_413_and_a_small_one_is_read(
    start: Callable[..., ThreadedServer],
) -> None:
    server = start(http_max_form_bytes=4096)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        big = client.post("/login", data={"token": "x" * 5000})
        assert big.status_code == 413
        assert big.json()["error"] == "payload_too_large"
        small = client.post("/login", data={"token": TOKEN})  # no sign-in form token: read, and refused for that
        assert small.status_code == 403
        assert client.post("/webhooks/github", content=b"x" * 8192).status_code == 400  # the webhook's own cap
