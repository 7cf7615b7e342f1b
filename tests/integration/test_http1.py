"""The forwarder's HTTP/1.1 client against real sockets: keep-alive, chunked and sized bodies, interim answers,
stale connections, refused connections and bodies too large to read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ghingest.app import http1

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
        origin.close()
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
        origin.close()
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
