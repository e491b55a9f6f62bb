"""One reader of the global event stream, fanned out to every ``GET /v1/events`` client.

However many clients follow the global stream (a web page each), the dispatcher holds one
blocking XREAD on it (on a Redis Cluster one per partition's stream: ``wire.keys.Keyspace``):
the reader runs while someone listens and hands each entry to the subscribers allowed to see it
(a tenant: its own evaluations; an operator: all). A subscriber that falls ``queue_max`` entries
behind is dropped (its stream ends and the client resumes from its ``Last-Event-ID``), so a slow
client costs bounded memory.

A position in the global stream is its entry id; with partitions, one entry id per partition,
comma-separated (``encode``): a client's ``Last-Event-ID`` names how far it got in each.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import Any

import redis.asyncio
import redis.exceptions

from dispatcher.store import connect, stream_reads
from wire import keys, tenancy

log = logging.getLogger(__name__)
_READ_COUNT = 500
BLOCK_SECONDS = 5.0
_RETRY_SECONDS = 1.0
_SEPARATOR = ","

Position = list[str]
"""The last entry id seen in each partition's global stream."""
Entry = tuple[int, str, dict[str, Any]]
"""A partition, its stream entry id and the event as the API shows it (``tenancy.present``)."""
Item = tuple[str, dict[str, Any]]
"""An event as a client receives it: the position after it, and the event."""


def visible(event: dict[str, Any], tenant: str | None) -> bool:
    """Whether a caller of ``tenant`` (None: an operator) may see ``event`` (qualified id)."""
    return tenant is None or tenancy.split(str(event.get("eval_id", "")))[0] == tenant


def decode(entry: stream_reads.Entry) -> tuple[str, dict[str, Any]]:
    entry_id, fields = entry
    event = json.loads(fields.get(keys.EVENT_FIELD.encode(), b"{}"))
    return entry_id.decode(), event


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id's order (ids of different partitions compare by time, then sequence)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def encode(position: Position) -> str:
    return _SEPARATOR.join(position)


def split(text: str) -> Position:
    return text.split(_SEPARATOR)


def advance(position: Position, partition: int, entry_id: str) -> bool:
    """Move ``position`` to ``entry_id`` if that is past it; whether it was (not seen yet)."""
    if id_key(entry_id) <= id_key(position[partition]):
        return False
    position[partition] = entry_id
    return True


@dataclasses.dataclass(eq=False)
class Subscription:
    tenant: str | None
    queue: asyncio.Queue[Entry | None]
    start: Position
    """Everything after it (in every partition) reaches the queue."""
    dropped: bool = False


class Hub:
    def __init__(self, client: redis.asyncio.Redis, *, queue_max: int = 10_000) -> None:
        self._client = client
        self._queue_max = queue_max
        space = connect.keyspace(client)
        self.streams = [space.global_stream(p) for p in space.all_partitions()]
        self._reads = connect.BlockingReads(client)
        self._subscribers: set[Subscription] = set()
        self._readers: list[asyncio.Task[None]] = []
        self._delivered: Position = []
        self._lock = asyncio.Lock()

    async def head(self) -> Position:
        """Each partition's last entry id ("0-0" for an empty one): where "now" is."""
        async with self._client.pipeline(transaction=False) as pipe:
            for stream in self.streams:
                pipe.xrevrange(stream, count=1)
            lasts = await pipe.execute()
        return [str(last[0][0].decode()) if last else "0-0" for last in lasts]

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant: str | None) -> Any:
        """A subscription that receives every entry added after its ``start`` (``None`` in its
        queue: it was dropped, or the reader stopped); the readers start with the first
        subscriber and stop with the last."""
        async with self._lock:
            if not self._readers or any(r.done() for r in self._readers):
                self._stop_readers()  # one ended (Redis failed it): all start again
                # The start is read here, before anyone subscribed replays: no entry falls
                # between a replay and the live part.
                self._delivered = await self.head()
                self._readers = [
                    asyncio.create_task(self._read(p, self._delivered[p]), name="global events")
                    for p in range(len(self.streams))
                ]
            sub = Subscription(tenant, asyncio.Queue(maxsize=self._queue_max), [*self._delivered])
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            if not self._subscribers:
                self._stop_readers()

    def _stop_readers(self) -> None:
        for reader in self._readers:
            connect.abandon(reader)  # closing the pools ends one whose cancel was lost
        self._readers = []

    async def close(self) -> None:
        self._stop_readers()
        for sub in list(self._subscribers):
            self._drop(sub)
        await self._reads.aclose()

    async def _read(self, partition: int, cursor: str) -> None:
        stream = self.streams[partition]
        try:
            reader = await self._reads.for_key(stream)
            while self._subscribers:
                reply = await reader.xread(
                    {stream: cursor}, count=_READ_COUNT, block=int(BLOCK_SECONDS * 1000)
                )
                for entry in stream_reads.entries(reply):
                    cursor, event = decode(entry)
                    self._delivered[partition] = cursor
                    self._deliver(partition, cursor, event)
        except (redis.exceptions.RedisError, OSError) as e:
            # The clients' streams end; they come back with their Last-Event-ID.
            log.warning("global event stream: %s", e)
            await asyncio.sleep(_RETRY_SECONDS)
            for sub in list(self._subscribers):
                self._drop(sub)

    def _deliver(self, partition: int, entry_id: str, event: dict[str, Any]) -> None:
        shown: dict[str, Any] | None = None
        for sub in list(self._subscribers):
            if sub.dropped or not visible(event, sub.tenant):
                continue
            shown = shown or tenancy.present(event)
            try:
                sub.queue.put_nowait((partition, entry_id, shown))
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        sub.dropped = True
        self._subscribers.discard(sub)
        # Room for the end mark: what is queued is stale once the subscriber must resume.
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(None)
