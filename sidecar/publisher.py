"""Drains the outbox into Redis, one event at a time, in order, through ``streams.Publisher``.

Transient failures (connection refused or lost, timeouts, a server still loading its data) are
retried with capped exponential backoff, the same event with the same dedup token, so order is
kept and a reply lost after the script ran is not a duplicate. Everything else Redis answers
(NOPERM, a wrong password, WRONGTYPE) cannot get better by retrying: it becomes
``PublishRejectedError`` and the sidecar exits non-zero.

The loop is ours rather than redis-py's ``Retry``: it must retry forever (Redis may be away for
minutes), log once per outage, and treat ``AuthenticationError`` (a ``ConnectionError`` in
redis-py) as permanent. It still takes its delays from redis-py's backoff.
"""

import asyncio
import dataclasses
import logging
import os

import redis.asyncio
import redis.asyncio.retry
import redis.backoff
import redis.exceptions

from sidecar import builders, errors, events, outbox, progress, settings, streams

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
# Output chunks up to this size are read (and their progress saved) on the event loop.
INLINE_READ_BYTES = 64 * 1024


def connect(config: settings.SidecarSettings) -> redis.asyncio.Redis:
    """A client that fails fast, so ``EventPublisher`` sees every failure and owns the retries."""
    return redis.asyncio.Redis.from_url(
        str(config.redis_url),
        password=config.redis_password(),
        socket_timeout=config.redis_timeout_seconds,
        socket_connect_timeout=config.redis_timeout_seconds,
        retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


@dataclasses.dataclass
class Counts:
    events: int = 0
    duplicates: int = 0
    output_bytes: int = 0
    retries: int = 0


class EventPublisher:
    def __init__(self, sink: streams.Publisher) -> None:
        self._sink = sink
        self._backoff = redis.backoff.ExponentialWithJitterBackoff(
            cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS
        )
        self.counts = Counts()

    async def publish(self, event: events.Event, token: str) -> streams.Published:
        failures = 0
        while True:
            try:
                result = await self._sink.publish(event, token=token)
            except redis.exceptions.AuthenticationError as e:
                raise errors.PublishRejectedError(errors.bounded(f"redis: {e}")) from e
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
                failures += 1
                self.counts.retries += 1
                if failures == 1:
                    log.warning(
                        "redis unavailable (%s); retrying %s", errors.bounded(str(e)), token
                    )
                await asyncio.sleep(self._backoff.compute(failures))
                continue
            except redis.exceptions.RedisError as e:
                raise errors.PublishRejectedError(errors.bounded(f"redis: {e}")) from e
            if failures:
                log.info("redis is back after %d failed attempts", failures)
            self.counts.events += 1
            self.counts.duplicates += result.duplicate
            return result


class OutboxDrain:
    """The single publisher task: takes items from the outbox in order until it says stop."""

    def __init__(
        self,
        box: outbox.Outbox,
        publisher: EventPublisher,
        *,
        eval_id: str,
        state_dir: str,
        exit_after_terminal: bool,
    ) -> None:
        self._box = box
        self._publisher = publisher
        self._eval_id = eval_id
        self._state_dir = state_dir
        self._exit_after_terminal = exit_after_terminal

    async def run(self) -> None:
        """Return when the outbox is closed and empty, or the terminal event is out and the
        sidecar should exit after it."""
        while (item := await self._box.next()) is not None:
            if isinstance(item, outbox.EventItem):
                await self._publisher.publish(item.event, item.token)
                self._box.done_event(item)
                if item.event.terminal and self._exit_after_terminal:
                    return
            else:
                await self._publish_output(item)

    async def _publish_output(self, item: outbox.OutputItem) -> None:
        offsets = self._box.published_offsets()
        if item.limit <= INLINE_READ_BYTES:
            # A small chunk is read and recorded at once: a thread hop costs more than the work.
            chunk, data = self._prepare(item, offsets)
        else:
            chunk, data = await asyncio.to_thread(self._prepare, item, offsets)
        if chunk.length:
            event = builders.output_event(self._eval_id, chunk.stream, chunk.offset, data)
            await self._publisher.publish(
                event, builders.output_token(chunk.stream, chunk.offset, chunk.length)
            )
            self._publisher.counts.output_bytes += chunk.length
        self._box.done_output(item, chunk.length)

    def _prepare(
        self, item: outbox.OutputItem, offsets: dict[builders.Stream, int]
    ) -> tuple[progress.Chunk, str]:
        """Read and cut the chunk, then record it as in flight before it is published."""
        try:
            with open(os.path.join(self._state_dir, item.stream), "rb") as f:
                f.seek(item.offset)
                raw = f.read(item.limit)
        except FileNotFoundError:
            raw = b""  # a replayed chunk of a file that is gone: nothing left to send
        data, used = builders.decode_chunk(raw, final=item.final or item.exact)
        chunk = progress.Chunk(item.stream, item.offset, used)
        if used:
            progress.save(self._state_dir, progress.Progress(published=offsets, inflight=chunk))
        return chunk, data
