"""A small HTTP/1.1 client for the ingest calls (event POSTs, the program's GET): one
keep-alive connection, nothing more.

Why not aiohttp or httpx: the sidecar runs beside every evaluation, so its memory is paid per
pod, and it sends one kind of request to one server. Every failure to get a complete response
(refused, reset, timeout, malformed reply) becomes ``IngestUnavailableError``; the caller
retries. A request on a reused connection that the server had already closed is retried once at
once on a fresh one, as browsers do: the dedup tokens make a repeated POST harmless.
"""

import asyncio
import contextlib
import dataclasses
import urllib.parse
from collections.abc import Mapping

from sidecar import errors

# A reply bigger than this is not the ingest contract's (a few dozen bytes per event).
MAX_RESPONSE_BODY_BYTES = 1024 * 1024
MAX_HEADER_LINES = 100


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class _Stale(Exception):
    """A reused connection was closed by the server before it answered."""


class HttpClient:
    def __init__(self, base_url: str, *, timeout: float) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        self._authority = url.netloc.rpartition("@")[2]
        self._prefix = url.path.rstrip("/")
        self._timeout = timeout
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> Response:
        return await self._call("POST", path, body, headers, MAX_RESPONSE_BODY_BYTES)

    async def get(self, path: str, headers: Mapping[str, str], *, max_body: int) -> Response:
        return await self._call("GET", path, b"", headers, max_body)

    async def _call(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str], max_body: int
    ) -> Response:
        request = self._request(method, path, body, headers)
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._exchange(request, max_body, reused=self._conn is not None)
                except _Stale:
                    return await self._exchange(request, max_body, reused=False)
        except (OSError, TimeoutError, EOFError, ValueError, asyncio.LimitOverrunError) as e:
            await self.aclose()
            raise errors.IngestUnavailableError(f"{type(e).__name__}: {e}") from e

    async def aclose(self) -> None:
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            with contextlib.suppress(OSError):  # already broken: nothing to close cleanly
                await writer.wait_closed()

    def _request(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        if any(c in value for value in headers.values() for c in "\r\n"):
            raise ValueError("a header value holds a line break")
        lines = [
            f"{method} {self._prefix}{path} HTTP/1.1",
            f"Host: {self._authority}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _exchange(self, request: bytes, max_body: int, *, reused: bool) -> Response:
        reader, writer = await self._connection()
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readuntil(b"\r\n")
        except (OSError, asyncio.IncompleteReadError) as e:
            await self.aclose()
            if reused:
                raise _Stale() from e
            raise
        response, reusable = await _read_response(status_line, reader, max_body)
        if not reusable:
            await self.aclose()
        return response

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is not None and self._conn[0].at_eof():
            await self.aclose()  # the server closed the idle connection
        if self._conn is None:
            self._conn = await asyncio.open_connection(
                self._host, self._port, ssl=True if self._tls else None
            )
        return self._conn


async def _read_response(
    status_line: bytes, reader: asyncio.StreamReader, max_body: int
) -> tuple[Response, bool]:
    """The response, and whether the connection may carry another request."""
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x reply: {status_line[:40]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        line = (await reader.readuntil(b"\r\n")).decode("latin-1")
        if line == "\r\n":
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    else:
        raise ValueError("too many header lines")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, max_body)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= max_body:
            raise ValueError(f"reply body of {length} bytes")
        body = await reader.readexactly(length)
    else:  # no length: the body runs to the end of the connection
        body = await _read_to_end(reader, max_body)
        return Response(status, headers, body), False
    return Response(status, headers, body), headers.get("connection", "").lower() != "close"


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        if not 0 < size <= max_body - len(body):
            raise ValueError(f"reply chunk of {size} bytes")
        body += await reader.readexactly(size + 2)  # the chunk and its CRLF
        del body[-2:]
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass  # trailers
    return bytes(body)


async def _read_to_end(reader: asyncio.StreamReader, max_body: int) -> bytes:
    body = bytearray()
    while chunk := await reader.read(64 * 1024):
        body += chunk
        if len(body) > max_body:
            raise ValueError("reply body too large")
    return bytes(body)
