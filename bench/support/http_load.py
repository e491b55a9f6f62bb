"""A lean HTTP/1.1 load generator: keep-alive connections that send one prepared request and
read its answer, then the next, with no client library on the path.

On a 2-core machine the load generator shares the CPU with the server it measures. aiohttp's
client spends about as much CPU per request as a small server does, so it takes a third of
the machine from the dispatcher (the raw loop it is compared with has no HTTP client at all).
This one does, per request, one ``write`` of prepared bytes and a parse of the answer's status
line and ``Content-Length``, as ``wrk`` would. The server sees the same requests.
"""

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any


def post_request(host: str, port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class _Connection(asyncio.Protocol):
    """Sends ``request`` whenever the last answer is complete, until ``turns`` runs out."""

    def __init__(
        self, request: bytes, turns: Iterator[int], latencies: list[float], statuses: list[int]
    ) -> None:
        self._request = request
        self._turns = turns
        self._latencies = latencies
        self._statuses = statuses
        self._buffer = b""
        self._sent_at = 0.0
        self._transport: asyncio.Transport | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        if next(self._turns, None) is None:
            self._transport.close()
            return
        self._sent_at = time.perf_counter()
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        if len(self._buffer) < end + 4 + length:
            return
        self._latencies.append(time.perf_counter() - self._sent_at)
        self._statuses.append(int(self._buffer[9:12]))
        self._buffer = self._buffer[end + 4 + length :]
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


async def run(
    host: str, port: int, request: bytes, total: int, connections: int
) -> tuple[float, list[float], list[int]]:
    """``total`` requests over ``connections`` keep-alive connections: (seconds, latencies,
    statuses)."""
    loop = asyncio.get_running_loop()
    turns = iter(range(total))
    latencies: list[float] = []
    statuses: list[int] = []
    started = time.perf_counter()
    opened = [
        await loop.create_connection(
            lambda: _Connection(request, turns, latencies, statuses), host, port
        )
        for _ in range(connections)
    ]
    await asyncio.gather(*(protocol.finished for _, protocol in opened))
    return time.perf_counter() - started, latencies, statuses
