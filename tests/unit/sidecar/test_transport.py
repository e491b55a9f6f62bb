"""The small HTTP/1.1 client against a raw asyncio server that answers byte for byte."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sidecar import errors, transport

Reply = Callable[[int], bytes | None]  # request number -> raw reply (None: hang)


class RawServer:
    def __init__(self, reply: Reply, *, close_after: bool = False) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> "RawServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/base/"
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for handler in self.handlers:
            handler.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                raw = self.reply(len(self.requests))
                if raw is None:
                    await asyncio.sleep(3600)
                writer.write(raw or b"")
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(reply: Reply, **options: bool) -> RawServer:
        servers.append(await RawServer(reply, **options).start())
        return servers[-1]

    yield start
    for server in servers:
        await server.stop()


def ok(body: bytes = b'{"results":[]}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def post(client: transport.HttpClient, body: bytes = b"{}") -> transport.Response:
    return await client.post("/ingest/x", body, {"Authorization": "Bearer t"})


async def test_requests_share_one_keep_alive_connection(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(lambda n: ok(b"reply %d" % n))
    client = transport.HttpClient(server.url, timeout=5)
    first = await post(client, b'{"a":1}')
    second = await post(client)
    assert (first.status, first.body, second.body) == (200, b"reply 1", b"reply 2")
    assert server.connections == 1
    head = server.requests[0]
    assert head.startswith(b"POST /base/ingest/x HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in head
    assert b"\r\nAuthorization: Bearer t\r\n" in head
    assert head.endswith(b'\r\n\r\n{"a":1}')
    await client.aclose()


async def test_a_chunked_reply_is_read_whole(serve: Callable[..., Awaitable[RawServer]]) -> None:
    raw = (
        b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\nRetry-After: 1\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    server = await serve(lambda n: raw)
    client = transport.HttpClient(server.url, timeout=5)
    response = await post(client)
    assert (response.status, response.body) == (503, b"hello world")
    assert response.headers["retry-after"] == "1"
    await post(client)
    assert server.connections == 1
    await client.aclose()


async def test_a_reply_without_length_ends_with_the_connection(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(lambda n: b"HTTP/1.0 401 Unauthorized\r\n\r\nno", close_after=True)
    client = transport.HttpClient(server.url, timeout=5)
    assert (await post(client)).body == b"no"
    assert (await post(client)).status == 401
    assert server.connections == 2
    await client.aclose()


async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(lambda n: ok(), close_after=True)  # closes after each reply
    client = transport.HttpClient(server.url, timeout=5)
    for _ in range(3):
        assert (await post(client)).status == 200
    assert server.connections == 3
    await client.aclose()


@pytest.mark.parametrize(
    "raw",
    [
        None,  # no reply at all: the timeout
        b"",  # closed without a reply
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
)
async def test_no_usable_reply_is_ingest_unavailable(
    serve: Callable[..., Awaitable[RawServer]], raw: bytes | None
) -> None:
    server = await serve(lambda n: raw, close_after=True)
    client = transport.HttpClient(server.url, timeout=0.3)
    with pytest.raises(errors.IngestUnavailableError):
        await post(client)
    await client.aclose()


async def test_nobody_listening_is_ingest_unavailable(
    serve: Callable[..., Awaitable[RawServer]],
) -> None:
    server = await serve(lambda n: ok())
    await server.stop()
    client = transport.HttpClient(server.url, timeout=1)
    with pytest.raises(errors.IngestUnavailableError, match=r"Connect|refused"):
        await post(client)


def test_only_http_urls_and_no_header_injection() -> None:
    with pytest.raises(ValueError, match="http"):
        transport.HttpClient("redis://x:6379", timeout=1)
    client = transport.HttpClient("http://x", timeout=1)
    with pytest.raises(ValueError, match="line break"):
        asyncio.run(client.post("/", b"", {"X": "a\r\nInjected: 1"}))
