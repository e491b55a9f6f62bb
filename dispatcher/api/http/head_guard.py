"""A deadline on a connection's first request head: a client that trickles its headers in (a
slow-loris) is cut off after ``seconds``, instead of holding a connection for ever.

aiohttp has no such timeout: its keep-alive timer stops at a connection's first byte. So the
listening socket's protocol is the server's own, wrapped: ``HeadGuard`` passes every call
through and closes the transport if no blank line (the end of a request head) has arrived in
time. Later requests on a kept-alive connection are bounded by the body timeout and the idle
timeout only.
"""

import asyncio

from aiohttp import web

_HEAD_END = b"\r\n\r\n"


class HeadGuard(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._late)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._disarm()
            else:
                self._tail = seen[-(len(_HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _late(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` whose connections are ``HeadGuard``-ed."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, head_seconds: float):
        super().__init__(runner, host, port)
        self._head_seconds = head_seconds

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None

        def guarded() -> asyncio.Protocol:
            return HeadGuard(server(), self._head_seconds)

        self._server = await asyncio.get_running_loop().create_server(
            guarded, self._host, self._port, reuse_address=True
        )
