"""``GET /v1/evaluations/{id}/events``: Server-Sent Events from the evaluation's stream.

Replays the stream from ``Last-Event-ID`` (header or ``?last_event_id=``; the SSE id is the
stream entry id), then follows it live with XREAD BLOCK. Each message is ``id:`` (entry id),
``event:`` (event type) and ``data:`` (the event JSON, one line). An idle stream gets a comment
line every heartbeat. The response ends after the first terminal event, when the record
disappears (expired), or when the dispatcher shuts down; a client that resumes after the
terminal event gets what followed it (e.g. a verified confirmation) and the end.
"""

import asyncio
import json
import re
from contextlib import suppress

import redis.asyncio
from aiohttp import web

from dispatcher import errors, stream_reads
from dispatcher.store import Store
from sidecar import events, streams

_ENTRY_ID = re.compile(r"^[0-9]+(-[0-9]+)?$")
_REPLAY_CHUNK = 500
_TERMINAL = {t.value for t in events.TERMINAL_TYPES}
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


def resume_id(request: web.Request) -> str | None:
    value = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if value is None or value == "":
        return None
    if not _ENTRY_ID.match(value):
        raise errors.InvalidRequestError(
            "invalid Last-Event-ID",
            details=[{"field": "last_event_id", "message": "must be an event id from this stream"}],
        )
    return value


def message(entry: stream_reads.Entry) -> tuple[bytes, bool]:
    """One SSE message for a stream entry, and whether its event is terminal."""
    entry_id, fields = entry
    data = fields.get(streams.EVENT_FIELD.encode(), b"{}")
    kind = str(json.loads(data).get("type", "message"))
    text = b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, kind.encode(), data.replace(b"\n", b""))
    return text, kind in _TERMINAL


class EventStream:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: Store,
        *,
        heartbeat_seconds: float,
        stopping: asyncio.Event,
    ) -> None:
        self._client = client
        self._store = store
        self._heartbeat = heartbeat_seconds
        self._stopping = stopping

    async def respond(self, request: web.Request, eval_id: str) -> web.StreamResponse:
        cursor = resume_id(request)
        record = await self._store.require(eval_id)
        response = web.StreamResponse(headers=HEADERS)
        await response.prepare(request)
        with suppress(ConnectionResetError):
            await response.write(b"retry: 1000\n\n")
            cursor, ended = await self._replay(response, eval_id, cursor)
            if not ended and not record.status.terminal:
                await self._follow(response, eval_id, cursor)
        return response

    async def _replay(
        self, response: web.StreamResponse, eval_id: str, cursor: str | None
    ) -> tuple[str, bool]:
        key = streams.eval_stream(eval_id)
        while True:
            start = "-" if cursor is None else "(" + cursor
            entries = await self._client.xrange(key, min=start, count=_REPLAY_CHUNK)
            for entry in entries:
                cursor = entry[0].decode()
                if await self._send(response, entry):
                    return cursor, True
            if len(entries) < _REPLAY_CHUNK:
                return cursor or "0-0", False

    async def _follow(self, response: web.StreamResponse, eval_id: str, cursor: str) -> None:
        key = streams.eval_stream(eval_id)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                read = asyncio.ensure_future(
                    self._client.xread({key: cursor}, count=_REPLAY_CHUNK, block=self._block_ms())
                )
                await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    with suppress(asyncio.CancelledError):
                        await read
                    return
                entries = stream_reads.entries(read.result())
                if not entries:
                    if not await self._still_open(eval_id):
                        # Whatever reached the stream before the record ended, then stop.
                        await self._replay(response, eval_id, cursor)
                        return
                    await response.write(b": heartbeat\n\n")
                    continue
                for entry in entries:
                    cursor = entry[0].decode()
                    if await self._send(response, entry):
                        return
        finally:
            stop.cancel()
            with suppress(asyncio.CancelledError):
                await stop

    def _block_ms(self) -> int:
        return max(1, int(self._heartbeat * 1000))

    async def _still_open(self, eval_id: str) -> bool:
        """On an idle heartbeat: keep going while the record exists and has not ended (an end
        whose event was trimmed away would otherwise hold the response forever)."""
        record = await self._store.get(eval_id)
        return record is not None and not record.status.terminal

    async def _send(self, response: web.StreamResponse, entry: stream_reads.Entry) -> bool:
        text, terminal = message(entry)
        await response.write(text)
        return terminal
