"""Feeds the status store from the global event stream through a consumer group.

Every dispatcher process joins ``wire.keys.CONSUMER_GROUP`` under a name of its own, so
each event is applied once by one of them and a restarted dispatcher loses nothing:
- on every (re)start of the loop it first re-reads its own pending entries (delivered before
  a connection broke, never acknowledged), then claims entries another consumer left pending
  longer than ``claim_idle_seconds`` (that process died), then follows new entries (``>``);
- an entry is acknowledged after its event was applied; one that does not parse is logged
  and acknowledged, so it cannot block the group;
- a missing group (NOGROUP: Redis lost its data or someone deleted it) is recreated from the
  start of the stream, which is safe because applying is idempotent (``last_seq``);
- connection errors are retried with exponential backoff, forever.

On a Redis Cluster the global stream is one per partition (``wire.keys.Keyspace``): the same
loop runs for each, on a connection of its own (a blocking read holds one).
"""

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Sequence

import pydantic
import redis.asyncio
import redis.exceptions

from dispatcher import metrics
from dispatcher.settings import ConsumerConfig
from dispatcher.store import connect, stream_reads
from dispatcher.store.store import Store
from wire import events, keys

log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
# Consumers with nothing pending and idle this many claim periods are deleted from the group.
_FORGET_AFTER_CLAIM_PERIODS = 20
# How long a stop waits for the loops to leave before it closes their connections.
_STOP_WAIT_SECONDS = 1.0


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Consumer:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        store: Store,
        config: ConsumerConfig,
        *,
        registry: metrics.Registry | None = None,
        name: str | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        """``on_end`` hears of every terminal event once it is applied (a backend that admits
        work starts the next)."""
        self._client = client
        self._store = store
        self._config = config
        space = store.keyspace
        self._streams = [space.global_stream(p) for p in space.all_partitions()]
        self._reads = connect.BlockingReads(client)
        self.name = name or consumer_name()
        self._on_end = on_end
        self._stopping = asyncio.Event()
        registry = registry or metrics.Registry()
        self._applied = registry.counter(
            "crucible_dispatcher_events_total", "Events read from the global stream, by result."
        )
        self._errors = registry.counter(
            "crucible_dispatcher_consumer_errors_total", "Consumer restarts, by kind of error."
        )

    async def run(self) -> None:
        """Until ``stop`` (or cancelled); never gives up (a bug is logged and retried after a
        backoff)."""
        # A task group, not gather: a cancelled gather ends at its first cancelled loop while
        # the others still run; the group ends when the last one has.
        async with asyncio.TaskGroup() as loops:
            for stream in self._streams:
                loops.create_task(self._run(stream), name=f"consumer {self.name} {stream}")

    async def stop(self, task: "asyncio.Task[None]") -> None:
        """End ``task`` (``run``) and every loop in it: its reads are cancelled, and whatever
        a loop handled but did not acknowledge yet is another consumer's to claim (applying
        twice changes nothing). No loop outlives the stop, so none uses a client its owner
        closes next."""
        self._stopping.set()
        connect.abandon(task)
        await asyncio.wait({task}, timeout=_STOP_WAIT_SECONDS)
        # A cancel redis-py lost leaves a loop in its read: closing the pools ends that read,
        # and the loop, seeing the stop, leaves.
        await self._reads.aclose()
        if not task.done():
            await asyncio.wait({task}, timeout=_STOP_WAIT_SECONDS)

    async def _run(self, stream: str) -> None:
        backoff = self._config.backoff_initial_seconds
        while not self._stopping.is_set():
            try:
                await self._start(stream)
                backoff = self._config.backoff_initial_seconds
                await self._follow(stream)
            except Exception as e:
                if self._stopping.is_set():
                    return  # the stop closed the connection under the read
                if isinstance(e, redis.exceptions.ResponseError) and str(e).startswith("NOGROUP"):
                    log.warning("consumer group %s is gone; recreating it", keys.CONSUMER_GROUP)
                    self._errors.inc(kind="nogroup")
                    continue
                self._report(e, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self._config.backoff_max_seconds)

    def _report(self, error: Exception, backoff: float) -> None:
        if isinstance(error, _CONNECTION_ERRORS):
            log.warning("redis unavailable (%s); consumer retries in %.1fs", error, backoff)
            self._errors.inc(kind="connection")
        else:
            log.error("consumer failed; restarting in %.1fs", backoff, exc_info=error)
            self._errors.inc(kind="unexpected")

    async def _start(self, stream: str) -> None:
        await self._ensure_group(stream)
        await self._read_own_pending(stream)
        await self._claim_stale(stream)

    async def ensure_group(self) -> None:
        for stream in self._streams:
            await self._ensure_group(stream)

    async def _ensure_group(self, stream: str) -> None:
        try:
            await self._client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as e:
            if not str(e).startswith("BUSYGROUP"):
                raise

    async def _read_own_pending(self, stream: str) -> None:
        start = "0"
        while True:
            reply = await self._client.xreadgroup(
                keys.CONSUMER_GROUP,
                self.name,
                {stream: start},
                count=self._config.batch_size,
            )
            entries = stream_reads.entries(reply)
            if not entries:
                return
            await self._handle(stream, entries)
            start = entries[-1][0].decode()

    async def _claim_stale(self, stream: str) -> None:
        start = "0-0"
        while True:
            next_start, entries, *_ = await self._client.xautoclaim(
                stream,
                keys.CONSUMER_GROUP,
                self.name,
                min_idle_time=int(self._config.claim_idle_seconds * 1000),
                start_id=start,
                count=self._config.batch_size,
            )
            await self._handle(stream, [e for e in entries if e[1] is not None])
            start = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
            if start == "0-0":
                break
        await self._forget_dead_consumers(stream)
        if stream == self._streams[0]:  # once a period, not once a partition
            await self._store.indexes.prune()

    async def _forget_dead_consumers(self, stream: str) -> None:
        limit_ms = self._config.claim_interval_seconds * 1000 * _FORGET_AFTER_CLAIM_PERIODS
        consumers = await self._client.xinfo_consumers(stream, keys.CONSUMER_GROUP)
        for info in consumers:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name != self.name and info["pending"] == 0 and info["idle"] > limit_ms:
                await self._client.xgroup_delconsumer(stream, keys.CONSUMER_GROUP, name)

    async def _follow(self, stream: str) -> None:
        next_claim = time.monotonic() + self._config.claim_interval_seconds
        handled: list[bytes] = []
        while not self._stopping.is_set():
            # The last batch's acknowledgement rides with the next read: one round trip a batch.
            reader = await self._reads.for_key(stream)
            async with reader.pipeline(transaction=False) as pipe:
                if handled:
                    pipe.xack(stream, keys.CONSUMER_GROUP, *handled)
                pipe.xreadgroup(
                    keys.CONSUMER_GROUP,
                    self.name,
                    {stream: ">"},
                    count=self._config.batch_size,
                    block=int(self._config.block_seconds * 1000),
                )
                *_, reply = await pipe.execute()
            entries = stream_reads.entries(reply)
            await self._handle(stream, entries, ack=False)
            handled = [entry_id for entry_id, _ in entries]
            if time.monotonic() >= next_claim:
                await self._ack(stream, handled)
                handled = []
                await self._claim_stale(stream)
                next_claim = time.monotonic() + self._config.claim_interval_seconds
        await self._ack(stream, handled)

    async def _ack(self, stream: str, entry_ids: Sequence[bytes]) -> None:
        if entry_ids:
            await self._client.xack(stream, keys.CONSUMER_GROUP, *entry_ids)

    async def _handle(
        self, stream: str, entries: Sequence[stream_reads.Entry], *, ack: bool = True
    ) -> None:
        """Apply ``entries``; acknowledge them unless the caller will (``ack`` False). Unacked
        entries of a consumer that died are another's to claim: applying twice changes nothing."""
        if not entries:
            return
        parsed: list[tuple[events.Event, bytes | None]] = []
        skipped = 0
        for entry_id, fields in entries:
            fields = fields or {}
            if _IDLE_ACCEPTED.match(fields.get(keys.EVENT_FIELD.encode(), b"")):
                skipped += 1  # most entries under load: not worth a parse
                continue
            try:
                event = events.parse(fields.get(keys.EVENT_FIELD.encode(), b""))
            except pydantic.ValidationError as e:
                log.error("dropping unreadable event %s: %s", entry_id.decode(), e)
                self._applied.inc(result="unreadable")
                continue
            if _changes_nothing(event):
                skipped += 1
                continue
            parsed.append((event, fields.get(keys.FULL_EVENT_FIELD.encode())))
        changed = await self._store.apply_many(await self._with_tails(parsed))
        if ack:
            await self._ack(stream, [entry_id for entry_id, _ in entries])
        self._applied.inc(changed, result="applied")
        self._applied.inc(len(parsed) - changed + skipped, result="ignored")
        if self._on_end is not None:
            for event, _ in parsed:
                if event.terminal:
                    self._on_end(event.eval_id)

    async def _with_tails(
        self, parsed: list[tuple[events.Event, bytes | None]]
    ) -> list[events.Event]:
        """The global stream carries terminal events without their output tails (it is bounded
        in bytes that way); the full event is in the evaluation's own stream, under ``full``."""
        result = [event for event, _ in parsed]
        wanted = [(i, ev, full) for i, (ev, full) in enumerate(parsed) if ev.terminal and full]
        if not wanted:
            return result
        async with self._client.pipeline(transaction=False) as pipe:
            for _, event, full_id in wanted:
                pipe.xrange(
                    self._store.keyspace.eval_stream(event.eval_id), min=full_id, max=full_id
                )
            replies = await pipe.execute()
        for (i, event, _), rows in zip(wanted, replies, strict=True):
            if rows:
                with contextlib.suppress(pydantic.ValidationError):
                    full = events.parse(rows[0][1][keys.EVENT_FIELD.encode()])
                    if full.eval_id == event.eval_id and full.seq == event.seq:
                        result[i] = full
        return result


# ``accepted`` with no job name as the dispatcher writes it (``publish.lua`` prepends v and seq
# to pydantic's dump, fields in declaration order; an id cannot hide a quote): _changes_nothing
# without the parse. Anything else, a job name included, is parsed.
_IDLE_ACCEPTED = re.compile(
    rb'\{"v":1,"seq":\d+,"eval_id":"[^"\\]*","type":"accepted","ts":[^,]*,"source":"[a-z]+"\}\Z'
)


def _changes_nothing(event: events.Event) -> bool:
    """``accepted`` without a job name: the record was created in that status, and the status
    rules move nothing for it (rank 0, no field) but ``last_seq``, which only keeps replays
    out, and a replay of it is as idle. Applying it cost a script run per submission."""
    return event.type == events.EventType.ACCEPTED and event.job_name is None
