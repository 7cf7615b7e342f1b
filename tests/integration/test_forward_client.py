"""The forward client (aiohttp behind the `ForwardTransport` seam) against real sockets on 127.0.0.1: keep-alive
(checked on the server's side), chunked and sized bodies, interim answers, `Connection: close`, HTTP/1.0 answers,
stale idle connections, answers cut short, refused connections, garbage, bodies longer than `max_body`, no redirects,
no proxy from the environment; TLS with a throwaway CA (`ca_bundle`) and HTTP proxies (CONNECT and absolute-form)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ghingest.app import forward_client
from ghingest.app.forward_transport import (
    ConnectFailed,
    ProtocolFailed,
    ProxyFailed,
    TlsFailed,
    TransportOptions,
)
from ghingest.core.forward_states import Verdict, classify
from tests.destinations import Certificates, Proxy, certificates

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def client(url: str, *, size: int = 2, max_body: int = 4096, **options: str | None) -> forward_client.Client:
    return forward_client.transport(TransportOptions(url=url, size=size, max_body=max_body, **options))  # type: ignore[arg-type]


class Served:
    """A raw asyncio server; `close()` waits until every connection's handler has finished and closed it."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.active: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[Served, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        port: int = self.server.sockets[0].getsockname()[1]
        return self, port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.active.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        if self.active:
            await asyncio.wait_for(asyncio.gather(*self.active, return_exceptions=True), 5)


async def serve(handler: Handler, tls: ssl.SSLContext | None = None) -> tuple[Served, int]:
    return await Served(handler, tls).start()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head, await reader.readexactly(length)


def test_keep_alive_sized_and_chunked_bodies_and_interim_answers() -> None:
    seen: list[bytes] = []
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            seen.append(head + body)
            if b"chunked" in body:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")  # fmt: skip
            else:
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async def scenario() -> None:
        server, port = await serve(handler)
        origin = client(f"http://127.0.0.1:{port}/hooks?x=1")
        first = await origin.post("/hooks?x=1", {"X-GitHub-Event": "release"}, b'{"a": 1}')
        assert (first.status, first.body) == (202, b"ok")
        second = await origin.post("/hooks?x=1", {}, b"chunked please")
        assert (second.status, second.body, second.headers["retry-after"]) == (503, b"hello world", "7")
        assert connections == 1  # the connection was kept and reused
        head = seen[0].split(b"\r\n\r\n")[0]
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /hooks?x=1 HTTP/1.1"
        assert b"Host: 127.0.0.1:%d" % port in lines
        assert b"X-GitHub-Event: release" in lines
        assert not any(line.lower().startswith((b"accept", b"cookie", b"user-agent")) for line in lines)
        assert seen[0].endswith(b'\r\n\r\n{"a": 1}')
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_a_stale_idle_connection_is_replaced_and_large_bodies_are_not_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await read_request(reader)
        if body == b"big":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # the server closes every connection after one answer, without saying so

    async def scenario() -> None:
        server, port = await serve(handler)
        origin = client(f"http://127.0.0.1:{port}/", max_body=50)
        for _ in range(3):
            assert (await origin.post("/", {}, b"small")).body == b"ok"
        big = await origin.post("/", {}, b"big")
        assert big.status == 200
        assert big.body == b"x" * 50
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_refused_connections_and_garbage_answers_are_failures() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        server, port = await serve(garbage)
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        with pytest.raises(ProtocolFailed, match="not valid HTTP"):
            await origin.post("/", {}, b"x")
        await origin.close()
        await server.close()
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        with pytest.raises(ConnectFailed, match=f"^cannot connect to 127.0.0.1:{port}: ") as refused:
            await origin.post("/", {}, b"x")
        assert not isinstance(refused.value, TlsFailed | ProxyFailed)
        await origin.close()

    asyncio.run(scenario())


def never(body: bytes) -> bool:
    return False


class Recorder:
    """A server whose `respond(n, request_body)` gives the raw bytes to answer the n-th request of a connection; it
    notes which connection served each request and whether the client closed each connection."""

    def __init__(self, respond: Callable[[int, bytes], bytes], *, close_when: Callable[[bytes], bool] = never) -> None:
        self.respond = respond
        self.close_when = close_when  # given a request's body: close the connection after answering it?
        self.requests: list[tuple[int, bytes]] = []  # (connection number, body)
        self.heads: list[bytes] = []
        self.client_closed: list[int] = []
        self.connections = 0

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        n = 0
        while True:
            try:
                head, body = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.client_closed.append(number)
                return
            self.requests.append((number, body))
            self.heads.append(head)
            writer.write(self.respond(n, body))
            await writer.drain()
            n += 1
            if self.close_when(body):
                return


async def recorded(
    respond: Callable[[int, bytes], bytes],
    close_when: Callable[[bytes], bool] = never,
    tls: ssl.SSLContext | None = None,
) -> tuple[Recorder, Served, int]:
    recorder = Recorder(respond, close_when=close_when)
    server, port = await serve(recorder.handler, tls)
    return recorder, server, port


async def until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll `condition` until it holds, at most `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_keep_alive_the_same_connection_serves_consecutive_requests() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % n)
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        answers = [await origin.post("/", {}, b"r%d" % i) for i in range(3)]
        assert [a.body for a in answers] == [b"0", b"1", b"2"]  # the n-th answer of one connection
        assert recorder.requests == [(1, b"r0"), (1, b"r1"), (1, b"r2")]
        assert recorder.client_closed == []
        await origin.close()
        await until(lambda: recorder.client_closed == [1])  # closed by `close()`, not before
        await server.close()

    asyncio.run(scenario())


def test_a_chunked_answer_with_extensions_and_trailers_is_read_and_the_connection_kept() -> None:
    answer = (b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nX-Upstream: a\r\nX-Upstream: b\r\n\r\n"
              b"3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip

    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: answer)
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        for _ in range(2):
            got = await origin.post("/", {}, b"x")
            assert (got.status, got.body) == (502, b"abc0123456789")
            assert got.headers["x-upstream"] == "b"  # the last value wins
        assert [number for number, _ in recorder.requests] == [1, 1]
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_an_answer_with_connection_close_is_not_reused() -> None:
    async def scenario() -> None:
        # The server says `Connection: close` but leaves the connection open: the client must not send on it again.
        recorder, server, port = await recorded(
            lambda n, _: b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        )
        origin = client(f"http://127.0.0.1:{port}/", size=2)
        for _ in range(2):
            assert (await origin.post("/", {}, b"x")).body == b"ok"
        assert [number for number, _ in recorder.requests] == [1, 2]
        await until(lambda: sorted(recorder.client_closed) == [1, 2])
        await origin.close()
        await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", True, id="until-close"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nuntil the end", False, id="sized"),
    ],
)
def test_an_http_1_0_answer_is_read_and_its_connection_not_reused(answer: bytes, close: bool) -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: answer, lambda _: close)
        origin = client(f"http://127.0.0.1:{port}/", size=2)
        for _ in range(2):
            got = await origin.post("/", {}, b"x")
            assert (got.status, got.body) == (200, b"until the end")
        assert [number for number, _ in recorder.requests] == [1, 2]  # an HTTP/1.0 answer ends its connection
        await origin.close()
        await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("cut", "resent"),
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd", False, id="sized"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", False, id="chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", True, id="head"),
        pytest.param(b"", True, id="nothing"),
    ],
)
def test_a_server_that_closes_mid_answer_is_a_protocol_failure_and_a_transient_verdict(
    cut: bytes, resent: bool
) -> None:
    async def scenario() -> None:
        # The first answer is complete (the connection is kept), the second is cut short on that reused connection.
        # Before the answer's head is complete the request is sent once more on a new connection (there cut
        # again); once the head has come, never. The next request gets a new connection.
        recorder, server, port = await recorded(
            lambda _, body: cut if body == b"second" else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            lambda body: body == b"second",
        )
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        assert (await origin.post("/", {}, b"first")).body == b"ok"
        with pytest.raises(ProtocolFailed):
            await origin.post("/", {}, b"second")
        assert classify(None) is Verdict.TRANSIENT  # what the forwarder makes of a request with no answer
        assert (await origin.post("/", {}, b"third")).body == b"ok"
        if resent:
            assert recorder.requests == [(1, b"first"), (1, b"second"), (2, b"second"), (3, b"third")]
        else:
            assert recorder.requests == [(1, b"first"), (1, b"second"), (2, b"third")]
        await origin.close()
        await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"e" * 1000, id="sized"),
        pytest.param(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3E8\r\n" + b"e" * 1000, id="chunked"),
    ],
)
def test_a_body_longer_than_max_body_is_cut_and_its_connection_closed_not_drained(answer: bytes) -> None:
    async def scenario() -> None:
        # The server sends part of a long body and waits: the client must not wait for (or read) the rest.
        recorder, server, port = await recorded(lambda n, _: answer)
        origin = client(f"http://127.0.0.1:{port}/", size=2, max_body=64)
        for _ in range(2):
            got = await asyncio.wait_for(origin.post("/", {}, b"x"), 5)
            assert (got.status, got.body) == (500, b"e" * 64)
        assert [number for number, _ in recorder.requests] == [1, 2]
        await until(lambda: sorted(recorder.client_closed) == [1, 2])
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_a_body_of_exactly_max_body_keeps_the_connection() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n12345678")
        origin = client(f"http://127.0.0.1:{port}/", size=1, max_body=8)
        for _ in range(2):
            assert (await origin.post("/", {}, b"x")).body == b"12345678"
        assert [number for number, _ in recorder.requests] == [1, 1]
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_header_values_with_control_characters_are_cleaned_and_framing_headers_are_the_clients() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: b"HTTP/1.1 204 No Content\r\n\r\n")
        origin = client(f"http://127.0.0.1:{port}/", size=1)
        headers = {"X-Note": " café ☃ a\r\nInjected: yes ", "Content-Length": "999", "Transfer-Encoding": "chunked"}
        assert (await origin.post("/p", headers, b"body")).status == 204
        head = recorder.heads[0]
        assert "X-Note: café ☃ a  Injected: yes\r\n".encode() in head
        assert b"\r\nInjected" not in head
        assert head.lower().count(b"content-length") == 1
        assert b"Content-Length: 4\r\n" in head
        assert b"transfer-encoding" not in head.lower()
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_a_redirect_is_an_answer_and_no_proxy_is_taken_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: a proxy from here would fail

    async def scenario() -> None:
        recorder, server, port = await recorded(
            lambda n, _: b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
        )
        origin = client(f"http://127.0.0.1:{port}/hook", size=1)
        got = await origin.post("/hook", {}, b"x")
        assert (got.status, got.headers["location"]) == (302, "/elsewhere")
        assert len(recorder.requests) == 1
        await origin.close()
        await server.close()

    asyncio.run(scenario())


# --- TLS ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return certificates(tmp_path_factory.mktemp("tls"))


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_https_is_verified_against_the_ca_bundle_and_fails_without_it(tls: Certificates) -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: OK, tls=tls.server_context())
        trusted = client(f"https://127.0.0.1:{port}/hook", size=1, ca_bundle=str(tls.ca_bundle))
        for _ in range(2):
            assert (await trusted.post("/hook", {}, b"x")).body == b"ok"
        assert [number for number, _ in recorder.requests] == [1, 1]  # kept alive over TLS
        await trusted.close()
        untrusted = client(f"https://127.0.0.1:{port}/hook", size=1)  # the system's store
        with pytest.raises(TlsFailed, match=f"^TLS with 127.0.0.1:{port}: .*unable to get local issuer certificate"):
            await untrusted.post("/hook", {}, b"x")
        await untrusted.close()
        assert len(recorder.requests) == 2  # nothing was sent without a verified certificate
        await server.close()

    asyncio.run(scenario())


def test_a_certificate_for_another_name_is_refused(tls: Certificates, tmp_path: Path) -> None:
    other = tls.ca.issue_cert("elsewhere.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)

    async def scenario() -> None:
        _, server, port = await recorded(lambda n, _: OK, tls=context)
        origin = client(f"https://127.0.0.1:{port}/hook", size=1, ca_bundle=str(tls.ca_bundle))
        with pytest.raises(TlsFailed, match=r"IP address mismatch|doesn't match"):
            await origin.post("/hook", {}, b"x")
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_an_unreadable_ca_bundle_fails_when_the_client_is_built(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-bundle.pem"
    bad.write_text("no certificates here\n")

    async def scenario() -> None:
        with pytest.raises(ssl.SSLError):
            client("https://127.0.0.1:1/hook", ca_bundle=str(bad))
        with pytest.raises(FileNotFoundError):
            client("https://127.0.0.1:1/hook", ca_bundle=str(tmp_path / "missing.pem"))

    asyncio.run(scenario())


# --- proxies --------------------------------------------------------------------------------------------------


def test_https_goes_through_a_connect_tunnel_verified_end_to_end(tls: Certificates) -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: OK, tls=tls.server_context())
        with Proxy() as proxy:
            proxied = f"http://forwarder:pa%3Ass@127.0.0.1:{proxy.port}"
            origin = client(f"https://127.0.0.1:{port}/hook", size=1, ca_bundle=str(tls.ca_bundle), proxy=proxied)
            for _ in range(3):
                assert (await origin.post("/hook", {"X-GitHub-Event": "ping"}, b"x")).body == b"ok"
            await origin.close()
            assert proxy.tunnels == 1  # one tunnel, kept alive for the three requests
            assert proxy.relayed == 0
            connect = proxy.heads[0]
            assert connect.startswith(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n" % port)
            assert b"Proxy-Authorization: Basic Zm9yd2FyZGVyOnBhOnNz\r\n" in connect  # forwarder:pa:ss
            # The destination saw ordinary requests, without the proxy's credential.
            assert len(recorder.requests) == 3
            assert all(b"proxy-authorization" not in head.lower() for head in recorder.heads)
            untrusted = client(f"https://127.0.0.1:{port}/hook", size=1, proxy=proxy.url)
            with pytest.raises(TlsFailed):  # the tunnel is no way around verification
                await untrusted.post("/hook", {}, b"x")
            await untrusted.close()
        await server.close()

    asyncio.run(scenario())


def test_http_goes_to_the_proxy_in_absolute_form() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: OK)
        with Proxy() as proxy:
            origin = client(f"http://127.0.0.1:{port}/hook?x=1", size=1, proxy=f"http://u:p@127.0.0.1:{proxy.port}")
            assert (await origin.post("/hook?x=1", {}, b"x")).body == b"ok"
            await origin.close()
            assert (proxy.tunnels, proxy.relayed) == (0, 1)
            head = proxy.heads[0]
            assert head.startswith(b"POST http://127.0.0.1:%d/hook?x=1 HTTP/1.1\r\n" % port)
            assert b"Proxy-Authorization: Basic dTpw\r\n" in head  # u:p
        assert len(recorder.requests) == 1
        await server.close()

    asyncio.run(scenario())


def test_a_proxy_that_refuses_or_is_down_is_a_proxy_failure(tls: Certificates) -> None:
    async def scenario() -> None:
        with Proxy(answer=407) as refusing:
            origin = client("https://127.0.0.1:9/hook", size=1, proxy=f"http://u:secret-pw@127.0.0.1:{refusing.port}")
            with pytest.raises(ProxyFailed, match=f"^the proxy 127.0.0.1:{refusing.port} answered 407") as caught:
                await origin.post("/hook", {}, b"x")
            assert "secret-pw" not in str(caught.value)
            await origin.close()
            port = refusing.port
        origin = client("https://127.0.0.1:9/hook", size=1, proxy=f"http://127.0.0.1:{port}")
        with pytest.raises(ProxyFailed, match=f"^cannot connect to the proxy 127.0.0.1:{port}: "):
            await origin.post("/hook", {}, b"x")
        await origin.close()

    asyncio.run(scenario())
