"""``GET /v1/evaluations/{id}/events``: Server-Sent Events from the evaluation's stream.

Replays the stream from ``Last-Event-ID`` (header or ``?last_event_id=``; the SSE id is the
stream entry id), then follows it live with XREAD BLOCK. Each message is ``id:`` (entry id),
``event:`` (event type) and ``data:`` (the event JSON, one line). An idle stream gets a comment
line every heartbeat. The response ends after the first *verified* terminal event (the kubelet's
or the process's own record; it may correct the first, fast one), or ``verify_wait_seconds``
after an unverified one if no confirmation comes, when the record disappears (expired), or when
the dispatcher shuts down. So a client that reads to the end holds the verified verdict.
"""

import asyncio
import enum
import json
import re
from contextlib import suppress

import redis.asyncio
from aiohttp import web

from dispatcher import errors
from dispatcher.store import stream_reads
from dispatcher.store.store import Store
from wire import events, keys

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


class End(enum.Enum):
    """What an event says about the end of the stream."""

    NONE = 0
    UNVERIFIED = 1
    VERIFIED = 2


def message(entry: stream_reads.Entry) -> tuple[bytes, End]:
    """One SSE message for a stream entry, and whether its event ends the evaluation."""
    entry_id, fields = entry
    data = fields.get(keys.EVENT_FIELD.encode(), b"{}")
    event = json.loads(data)
    kind = str(event.get("type", "message"))
    text = b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, kind.encode(), data.replace(b"\n", b""))
    if kind not in _TERMINAL:
        return text, End.NONE
    return text, End.VERIFIED if event.get("verified") is True else End.UNVERIFIED


class EventStream:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: Store,
        *,
        heartbeat_seconds: float,
        stopping: asyncio.Event,
        verify_wait_seconds: float = 15.0,
    ) -> None:
        self._client = client
        self._store = store
        self._heartbeat = heartbeat_seconds
        self._stopping = stopping
        self._verify_wait = verify_wait_seconds

    async def respond(self, request: web.Request, eval_id: str) -> web.StreamResponse:
        cursor = resume_id(request)
        record = await self._store.require(eval_id)
        response = web.StreamResponse(headers=HEADERS)
        await response.prepare(request)
        with suppress(ConnectionResetError):
            await response.write(b"retry: 1000\n\n")
            cursor, end = await self._replay(response, eval_id, cursor)
            if end is not End.VERIFIED and not (record.status.terminal and record.verified):
                await self._follow(response, eval_id, cursor, seen_end=end is End.UNVERIFIED)
        return response

    async def _replay(
        self, response: web.StreamResponse, eval_id: str, cursor: str | None
    ) -> tuple[str, End]:
        key = keys.eval_stream(eval_id)
        seen = End.NONE
        while True:
            start = "-" if cursor is None else "(" + cursor
            entries = await self._client.xrange(key, min=start, count=_REPLAY_CHUNK)
            for entry in entries:
                cursor = entry[0].decode()
                seen = max(seen, await self._send(response, entry), key=lambda e: e.value)
                if seen is End.VERIFIED:
                    return cursor, seen
            if len(entries) < _REPLAY_CHUNK:
                return cursor or "0-0", seen

    async def _follow(
        self, response: web.StreamResponse, eval_id: str, cursor: str, *, seen_end: bool
    ) -> None:
        key = keys.eval_stream(eval_id)
        loop = asyncio.get_running_loop()
        # After an unverified end, the verified one is waited for this long at most.
        give_up = loop.time() + self._verify_wait if seen_end else None
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                block = self._block_ms(None if give_up is None else give_up - loop.time())
                if block <= 0:
                    return
                read = asyncio.ensure_future(
                    self._client.xread({key: cursor}, count=_REPLAY_CHUNK, block=block)
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
                    end = await self._send(response, entry)
                    if end is End.VERIFIED:
                        return
                    if end is End.UNVERIFIED and give_up is None:
                        give_up = loop.time() + self._verify_wait
        finally:
            stop.cancel()
            with suppress(asyncio.CancelledError):
                await stop

    def _block_ms(self, remaining: float | None) -> int:
        """XREAD's block in ms; 0 once ``remaining`` ran out (a block of 0 is forever)."""
        seconds = self._heartbeat if remaining is None else min(self._heartbeat, remaining)
        return max(1, int(seconds * 1000)) if seconds > 0.001 else 0

    async def _still_open(self, eval_id: str) -> bool:
        """On an idle heartbeat: keep going while the record exists and has no verified end
        (an end whose event was trimmed away would otherwise hold the response forever)."""
        record = await self._store.get(eval_id)
        return record is not None and not (record.status.terminal and record.verified)

    async def _send(self, response: web.StreamResponse, entry: stream_reads.Entry) -> End:
        text, end = message(entry)
        await response.write(text)
        return end
