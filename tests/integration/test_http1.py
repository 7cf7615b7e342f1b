"""The forwarder's HTTP/1.1 client (h11 over asyncio streams) against real sockets on 127.0.0.1: keep-alive (checked
on the server's side), chunked and sized bodies, interim answers, `Connection: close`, HTTP/1.0 answers, stale idle
connections, answers cut short, refused connections, garbage and bodies longer than `max_body`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ghingest.app import http1
from ghingest.core.forward_states import Verdict, classify

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Served:
    """A raw asyncio server; `close()` waits until every connection's handler has finished and closed it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.active: set[asyncio.Task[None]] = set()

    async def start(self) -> tuple[Served, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return self, port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.active.add(task)  # type: ignore[arg-type]
        try:
            await self.handler(reader, writer)
        finally:
            writer.close()
            await writer.wait_closed()

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        if self.active:
            await asyncio.wait_for(asyncio.gather(*self.active, return_exceptions=True), 5)


async def serve(handler: Handler) -> tuple[Served, int]:
    return await Served(handler).start()


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
        writer.close()

    async def scenario() -> None:
        server, port = await serve(handler)
        origin = http1.Origin(f"http://127.0.0.1:{port}/hooks?x=1", size=2)
        first = await origin.post("/hooks?x=1", {"X-GitHub-Event": "release"}, b'{"a": 1}')
        assert (first.status, first.body) == (202, b"ok")
        second = await origin.post("/hooks?x=1", {}, b"chunked please")
        assert (second.status, second.body, second.headers["retry-after"]) == (503, b"hello world", "7")
        assert connections == 1  # the connection was kept and reused
        assert seen[0].startswith(b"POST /hooks?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"X-GitHub-Event: release\r\n" in seen[0]
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
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=2, max_body=50)
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
        writer.close()

    async def scenario() -> None:
        server, port = await serve(garbage)
        with pytest.raises(http1.ProtocolFailed):
            await http1.Origin(f"http://127.0.0.1:{port}/", size=1).post("/", {}, b"x")
        await server.close()
        with pytest.raises(http1.ConnectFailed):
            await http1.Origin(f"http://127.0.0.1:{port}/", size=1).post("/", {}, b"x")

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
        self.client_closed: list[int] = []
        self.connections = 0

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        n = 0
        while True:
            try:
                _, body = await read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.client_closed.append(number)
                return
            self.requests.append((number, body))
            writer.write(self.respond(n, body))
            await writer.drain()
            n += 1
            if self.close_when(body):
                return


async def recorded(
    respond: Callable[[int, bytes], bytes], close_when: Callable[[bytes], bool] = never
) -> tuple[Recorder, Served, int]:
    recorder = Recorder(respond, close_when=close_when)
    server, port = await serve(recorder.handler)
    return recorder, server, port


def test_keep_alive_the_same_connection_serves_consecutive_requests() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % n)
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=1)
        answers = [await origin.post("/", {}, b"r%d" % i) for i in range(3)]
        assert [a.body for a in answers] == [b"0", b"1", b"2"]  # the n-th answer of one connection
        assert recorder.requests == [(1, b"r0"), (1, b"r1"), (1, b"r2")]
        await origin.close()
        await server.close()
        assert recorder.client_closed == [1]  # closed by `origin.close()`, not before

    asyncio.run(scenario())


def test_a_chunked_answer_with_extensions_and_trailers_is_read_and_the_connection_kept() -> None:
    answer = (b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nX-Upstream: a\r\nX-Upstream: b\r\n\r\n"
              b"3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")  # fmt: skip

    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: answer)
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=1)
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
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=2)
        for _ in range(2):
            assert (await origin.post("/", {}, b"x")).body == b"ok"
        assert [number for number, _ in recorder.requests] == [1, 2]
        await origin.close()
        await server.close()
        assert sorted(recorder.client_closed) == [1, 2]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", True, id="until-close"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\nuntil the end", False, id="sized"),
        pytest.param(
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 13\r\n\r\nuntil the end",
            False,
            id="keep-alive",
        ),
    ],
)
def test_an_http_1_0_answer_is_read_and_its_connection_not_reused(answer: bytes, close: bool) -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: answer, lambda _: close)
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=2)
        for _ in range(2):
            got = await origin.post("/", {}, b"x")
            assert (got.status, got.body) == (200, b"until the end")
        assert [number for number, _ in recorder.requests] == [1, 2]  # h11 keeps no HTTP/1.0 connection alive
        await origin.close()
        await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd", id="sized"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n", id="chunked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Le", id="head"),
    ],
)
def test_a_server_that_closes_mid_answer_is_a_protocol_failure_and_a_transient_verdict(cut: bytes) -> None:
    async def scenario() -> None:
        # The first answer is complete (the connection is kept), the second is cut short on that reused connection:
        # it must not be sent again (the server saw it), and the next request gets a new connection.
        recorder, server, port = await recorded(
            lambda _, body: cut if body == b"second" else b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            lambda body: body == b"second",
        )
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=1)
        assert (await origin.post("/", {}, b"first")).body == b"ok"
        with pytest.raises(http1.ProtocolFailed):
            await origin.post("/", {}, b"second")
        assert classify(None) is Verdict.TRANSIENT  # what the forwarder makes of a request with no answer
        assert (await origin.post("/", {}, b"third")).body == b"ok"
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
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=2, max_body=64)
        for _ in range(2):
            got = await asyncio.wait_for(origin.post("/", {}, b"x"), 5)
            assert (got.status, got.body) == (500, b"e" * 64)
        assert [number for number, _ in recorder.requests] == [1, 2]
        await origin.close()
        await server.close()
        assert sorted(recorder.client_closed) == [1, 2]

    asyncio.run(scenario())


def test_a_body_of_exactly_max_body_keeps_the_connection() -> None:
    async def scenario() -> None:
        recorder, server, port = await recorded(lambda n, _: b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n12345678")
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=1, max_body=8)
        for _ in range(2):
            assert (await origin.post("/", {}, b"x")).body == b"12345678"
        assert [number for number, _ in recorder.requests] == [1, 1]
        await origin.close()
        await server.close()

    asyncio.run(scenario())


def test_header_values_h11_would_refuse_are_cleaned_and_framing_headers_are_the_clients() -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        heads.append(head)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async def scenario() -> None:
        server, port = await serve(handler)
        origin = http1.Origin(f"http://127.0.0.1:{port}/", size=1)
        headers = {"X-Note": " café ☃ a\r\nInjected: yes ", "Content-Length": "999", "Transfer-Encoding": "chunked"}
        assert (await origin.post("/p", headers, b"body")).status == 204
        head = heads[0]
        assert b"X-Note: caf\xe9 ? a  Injected: yes\r\n" in head
        assert b"\r\nInjected" not in head
        assert head.lower().count(b"content-length") == 1
        assert b"Content-Length: 4\r\n" in head
        assert b"transfer-encoding" not in head.lower()
        await origin.close()
        await server.close()

    asyncio.run(scenario())
