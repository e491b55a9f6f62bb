"""One reader of the global event stream, fanned out to every ``GET /v1/events`` client.

However many clients follow the global stream (a web page each), the dispatcher holds one
blocking XREAD on ``wire.keys.GLOBAL_STREAM``: the reader runs while someone listens and hands
each entry to the subscribers allowed to see it (a tenant: its own evaluations; an operator:
all). A subscriber that falls ``queue_max`` entries behind is dropped (its stream ends and the
client resumes from its ``Last-Event-ID``), so a slow client costs bounded memory.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import Any

import redis.asyncio
import redis.exceptions

from dispatcher.store import stream_reads
from wire import keys, tenancy

log = logging.getLogger(__name__)
_READ_COUNT = 500
BLOCK_SECONDS = 5.0
_RETRY_SECONDS = 1.0

Item = tuple[str, dict[str, Any]]
"""A stream entry id and its event as the API shows it (``tenancy.present``)."""


def visible(event: dict[str, Any], tenant: str | None) -> bool:
    """Whether a caller of ``tenant`` (None: an operator) may see ``event`` (qualified id)."""
    return tenant is None or tenancy.split(str(event.get("eval_id", "")))[0] == tenant


def decode(entry: stream_reads.Entry) -> Item:
    entry_id, fields = entry
    event = json.loads(fields.get(keys.EVENT_FIELD.encode(), b"{}"))
    return entry_id.decode(), event


def id_after(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes after ``b``."""

    def parts(i: str) -> tuple[int, int]:
        ms, _, seq = i.partition("-")
        return int(ms), int(seq or 0)

    return parts(a) > parts(b)


@dataclasses.dataclass(eq=False)
class Subscription:
    tenant: str | None
    queue: asyncio.Queue[Item | None]
    dropped: bool = False


class Hub:
    def __init__(self, client: redis.asyncio.Redis, *, queue_max: int = 10_000) -> None:
        self._client = client
        self._queue_max = queue_max
        self._subscribers: set[Subscription] = set()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def head(self) -> str:
        """The id of the stream's last entry ("0-0" when it is empty): where "now" is."""
        last = await self._client.xrevrange(keys.GLOBAL_STREAM, count=1)
        return str(last[0][0].decode()) if last else "0-0"

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str | None) -> Any:
        """A subscription that receives every entry added from now on (``None`` in its queue:
        it was dropped, or the reader stopped); the reader starts with the first subscriber
        and stops with the last."""
        sub = Subscription(tenant, asyncio.Queue(maxsize=self._queue_max))
        async with self._lock:
            if self._reader is None or self._reader.done():
                # The start is read here, before anyone subscribed replays: no entry falls
                # between a replay and the live part.
                start = await self.head()
                self._reader = asyncio.create_task(self._read(start), name="global events")
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            if not self._subscribers and self._reader is not None:
                self._reader.cancel()
                self._reader = None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for sub in list(self._subscribers):
            self._drop(sub)

    async def _read(self, cursor: str) -> None:
        try:
            while self._subscribers:
                reply = await self._client.xread(
                    {keys.GLOBAL_STREAM: cursor}, count=_READ_COUNT, block=int(BLOCK_SECONDS * 1000)
                )
                for entry in stream_reads.entries(reply):
                    cursor, event = decode(entry)
                    self._deliver(cursor, event)
        except (redis.exceptions.RedisError, OSError) as e:
            # The clients' streams end; they come back with their Last-Event-ID.
            log.warning("global event stream: %s", e)
            await asyncio.sleep(_RETRY_SECONDS)
            for sub in list(self._subscribers):
                self._drop(sub)

    def _deliver(self, entry_id: str, event: dict[str, Any]) -> None:
        shown: dict[str, Any] | None = None
        for sub in list(self._subscribers):
            if sub.dropped or not visible(event, sub.tenant):
                continue
            shown = shown or tenancy.present(event)
            try:
                sub.queue.put_nowait((entry_id, shown))
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.dropped = True
        self._subscribers.discard(sub)
        # Room for the end mark: what is queued is stale once the subscriber must resume.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)
