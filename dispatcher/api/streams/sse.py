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
import collections
import enum
import json
import time
from contextlib import suppress

import redis.asyncio
from aiohttp import web

from dispatcher import errors, metrics
from dispatcher.api.http import queries
from dispatcher.store import connect, stream_reads
from dispatcher.store.store import Store
from wire import events, keys, tenancy

_REPLAY_CHUNK = 500
_TERMINAL = {t.value for t in events.TERMINAL_TYPES}
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


class End(enum.Enum):
    """What an event says about the end of the stream."""

    NONE = 0
    UNVERIFIED = 1
    VERIFIED = 2


def message(entry: stream_reads.Entry) -> tuple[bytes, End, float | None]:
    """One SSE message for a stream entry, whether its event ends the evaluation, and its
    ``ts``."""
    entry_id, fields = entry
    event = json.loads(fields.get(keys.EVENT_FIELD.encode(), b"{}"))
    kind = str(event.get("type", "message"))
    # The id as the tenant names it, the tenant beside it; JSON text holds no raw newline.
    # UTF-8 as stored (escaping every non-ASCII character would make a line up to 12x longer);
    # a lone surrogate, which UTF-8 cannot carry, goes out as its JSON escape.
    text_json = json.dumps(tenancy.present(event), separators=(",", ":"), ensure_ascii=False)
    data = text_json.encode("utf-8", "backslashreplace")
    text = b"id: %s\nevent: %s\ndata: %s\n\n" % (entry_id, kind.encode(), data)
    ts = event.get("ts")
    ts = float(ts) if isinstance(ts, int | float) else None
    if kind not in _TERMINAL:
        return text, End.NONE, ts
    return text, End.VERIFIED if event.get("verified") is True else End.UNVERIFIED, ts


# Counter key of every tenant's streams together (no tenant is named with a space).
_TOTAL = " total"
_FULL_RETRY_AFTER_SECONDS = 5


class EventStream:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: Store,
        *,
        heartbeat_seconds: float,
        stopping: asyncio.Event,
        verify_wait_seconds: float = 15.0,
        streams_max: int = 500,
        ages: metrics.Histogram | None = None,
    ) -> None:
        """``ages``: where the age of each event sent live is observed."""
        self._client = client
        self._space = connect.keyspace(client)
        self._reads = connect.BlockingReads(client, max_connections=streams_max)
        self._store = store
        self._heartbeat = heartbeat_seconds
        self._stopping = stopping
        self._verify_wait = verify_wait_seconds
        # Each open stream holds a Redis connection in a blocking read: both are bounded here.
        self._streams_max = streams_max
        self._open: collections.Counter[str] = collections.Counter()
        self._ages = ages

    async def respond(
        self, request: web.Request, eval_id: str, *, tenant_max: int | None = None
    ) -> web.StreamResponse:
        """``tenant_max``: most streams the evaluation's tenant may hold open (None: no limit)."""
        # Everything that can refuse the request is checked before the headers go out: after
        # them, an error can only cut the stream short.
        cursor = queries.resume_id(request)
        record = await self._store.require(eval_id)
        tenant, _ = tenancy.split(eval_id)
        self._take_slot(tenant, tenant_max)
        try:
            response = web.StreamResponse(headers=HEADERS)
            await response.prepare(request)
            with suppress(ConnectionResetError):
                await response.write(b"retry: 1000\n\n")
                cursor, end = await self._replay(response, eval_id, cursor)
                if end is not End.VERIFIED and not (record.status.terminal and record.verified):
                    await self._follow(response, eval_id, cursor, seen_end=end is End.UNVERIFIED)
            return response
        finally:
            self._open[tenant] -= 1
            self._open[_TOTAL] -= 1

    def _take_slot(self, tenant: str, tenant_max: int | None) -> None:
        if self._open[_TOTAL] >= self._streams_max:
            raise errors.TooManyRequestsError(
                f"this dispatcher holds {self._streams_max} event streams, its limit",
                retry_after_seconds=_FULL_RETRY_AFTER_SECONDS,
            )
        if tenant_max is not None and self._open[tenant] >= tenant_max:
            raise errors.TenantLimitError(
                f"the tenant holds {tenant_max} event streams open here, its limit",
                retry_after_seconds=_FULL_RETRY_AFTER_SECONDS,
            )
        self._open[tenant] += 1
        self._open[_TOTAL] += 1

    async def _replay(
        self, response: web.StreamResponse, eval_id: str, cursor: str | None
    ) -> tuple[str, End]:
        key = self._space.eval_stream(eval_id)
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
        key = self._space.eval_stream(eval_id)
        loop = asyncio.get_running_loop()
        # After an unverified end, the verified one is waited for this long at most.
        give_up = loop.time() + self._verify_wait if seen_end else None
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                block = self._block_ms(None if give_up is None else give_up - loop.time())
                if block <= 0:
                    return
                reader = await self._reads.for_key(key)
                read = asyncio.ensure_future(
                    reader.xread({key: cursor}, count=_REPLAY_CHUNK, block=block)
                )
                await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    connect.abandon(read)
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
                    end = await self._send(response, entry, live=True)
                    if end is End.VERIFIED:
                        return
                    if end is End.UNVERIFIED and give_up is None:
                        give_up = loop.time() + self._verify_wait
        finally:
            stop.cancel()
            with suppress(asyncio.CancelledError):
                await stop

    async def close(self) -> None:
        await self._reads.aclose()

    def _block_ms(self, remaining: float | None) -> int:
        """XREAD's block in ms; 0 once ``remaining`` ran out (a block of 0 is forever)."""
        seconds = self._heartbeat if remaining is None else min(self._heartbeat, remaining)
        return max(1, int(seconds * 1000)) if seconds > 0.001 else 0

    async def _still_open(self, eval_id: str) -> bool:
        """On an idle heartbeat: keep going while the record exists and has no verified end
        (an end whose event was trimmed away would otherwise hold the response forever)."""
        record = await self._store.get(eval_id)
        return record is not None and not (record.status.terminal and record.verified)

    async def _send(
        self, response: web.StreamResponse, entry: stream_reads.Entry, *, live: bool = False
    ) -> End:
        text, end, ts = message(entry)
        await response.write(text)
        if live and ts is not None and self._ages is not None:
            self._ages.observe(time.time() - ts, at=metrics.AGE_AT_SSE)
        return end
