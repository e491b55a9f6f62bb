"""The one ordered outbox between the state-directory tail (producer) and the publisher.

Order is fixed: ``running``, then output in the order it was first seen, then the terminal event
once every output byte before it is out. Output is not copied into memory: the outbox holds,
per stream, how far the file has been published and how big it is, and the publisher reads the
next chunk from the file when it is ready to send it. So output waiting for Redis costs no
memory and coalesces by itself into full-size chunks; ``backlog_max_bytes`` bounds how far it
may fall behind, and what is skipped beyond that is counted in ``lost_bytes``. ``running`` and
the terminal event are never dropped.

Batching: new output is sent when ``batch_bytes`` are waiting, or ``batch_interval`` after it
was first seen, or at once when the evaluation has ended or the sidecar is draining.
"""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from sidecar import builders, events, progress

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EventItem:
    event: events.Event
    token: str


@dataclasses.dataclass(frozen=True)
class OutputItem:
    """Read up to ``limit`` bytes of ``stream`` at ``offset`` and publish them.

    ``final``: the bytes end the stream, so an incomplete character at the end is decoded
    (as a replacement mark) instead of held back. ``exact``: a chunk replayed after a restart,
    to be published with exactly ``limit`` bytes so its dedup token matches.
    """

    stream: builders.Stream
    offset: int
    limit: int
    final: bool = False
    exact: bool = False


Item = EventItem | OutputItem


@dataclasses.dataclass
class _Cursor:
    published: int = 0
    size: int = 0
    pending_since: float | None = None
    # The size at which the only unpublished bytes were an incomplete character.
    stalled_at: int | None = None
    replay: progress.Chunk | None = None


class Outbox:
    def __init__(
        self,
        *,
        batch_bytes: int,
        batch_interval: float,
        backlog_max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._batch_bytes = batch_bytes
        self._batch_interval = batch_interval
        self._backlog_max = backlog_max_bytes
        self._clock = clock
        self._cursors = {stream: _Cursor() for stream in builders.STREAMS}
        self._running: EventItem | None = None
        self._terminal: EventItem | None = None
        self._started = False
        self._ended = False
        self._closed = False
        self._changed = asyncio.Event()
        self.terminal_published = False
        self.lost_bytes = 0

    def restore(self, saved: progress.Progress | None) -> None:
        """Resume after a restart: skip what was published, replay the chunk in flight."""
        if saved is None:
            return
        for stream, cursor in self._cursors.items():
            cursor.published = cursor.size = saved.published.get(stream, 0)
        chunk = saved.inflight
        if chunk is not None and chunk.length > 0:
            cursor = self._cursors[chunk.stream]
            cursor.published = cursor.size = chunk.offset
            cursor.replay = chunk

    def add_running(self, item: EventItem) -> None:
        if not self._started:
            self._started = True
            self._running = item
            self._changed.set()

    def observe(self, stream: builders.Stream, size: int) -> None:
        """The output file ``stream`` now holds ``size`` bytes (files only grow)."""
        cursor = self._cursors[stream]
        if size <= cursor.size:
            return
        if cursor.pending_since is None:
            cursor.pending_since = self._clock()
        cursor.size = size
        backlog = size - cursor.published
        if backlog > self._backlog_max and cursor.replay is None:
            skipped = backlog - self._backlog_max
            cursor.published += skipped
            self.lost_bytes += skipped
            log.warning("%s: publishing is %d bytes behind; skipped %d", stream, backlog, skipped)
        self._changed.set()

    def add_terminal(self, item: EventItem) -> None:
        """The evaluation ended: sizes observed so far are final; ``item`` goes out last."""
        if not self._ended:
            self._ended = True
            self._terminal = item
            self._changed.set()

    def close(self) -> None:
        """Drain: no more input; send everything now; ``next`` returns None once all is out."""
        self._closed = True
        self._changed.set()

    def published_offsets(self) -> dict[builders.Stream, int]:
        return {stream: cursor.published for stream, cursor in self._cursors.items()}

    def unpublished_bytes(self) -> int:
        return sum(c.size - c.published for c in self._cursors.values())

    def holds_events(self) -> bool:
        return self._running is not None or self._terminal is not None

    async def next(self) -> Item | None:
        """The next item to publish, waiting for one; None once closed and empty."""
        while True:
            item, wait = self._choose(self._clock())
            if item is not None:
                return item
            if self._closed and wait is None:
                return None
            self._changed.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def done_event(self, item: EventItem) -> None:
        if item is self._running:
            self._running = None
        elif item is self._terminal:
            self._terminal = None
            self.terminal_published = True

    def done_output(self, item: OutputItem, length: int) -> None:
        """``length`` bytes at ``item.offset`` are published (0: only a split character waits)."""
        cursor = self._cursors[item.stream]
        cursor.replay = None
        if length == 0:
            cursor.stalled_at = cursor.size
            return
        cursor.stalled_at = None
        cursor.published = max(cursor.published, item.offset + length)
        cursor.pending_since = self._clock() if cursor.size > cursor.published else None

    def _choose(self, now: float) -> tuple[Item | None, float | None]:
        if self._running is not None:
            return self._running, None
        # Output waits for running (or for the end, when the command never started).
        if not (self._started or self._ended or self._closed):
            return None, None
        flushing = self._ended or self._closed
        best: tuple[float, builders.Stream] | None = None
        wait: float | None = None
        for stream, cursor in self._cursors.items():
            if cursor.replay is not None:
                chunk = cursor.replay
                return OutputItem(stream, chunk.offset, chunk.length, exact=True), None
            pending = cursor.size - cursor.published
            if pending <= 0 or (cursor.stalled_at == cursor.size and not flushing):
                continue
            since = cursor.pending_since if cursor.pending_since is not None else now
            due = since + self._batch_interval
            if flushing or pending >= self._batch_bytes or now >= due:
                if best is None or since < best[0]:
                    best = (since, stream)
            else:
                wait = due - now if wait is None else min(wait, due - now)
        if best is not None:
            cursor = self._cursors[best[1]]
            pending = cursor.size - cursor.published
            limit = min(pending, self._batch_bytes)
            return OutputItem(
                best[1], cursor.published, limit, final=flushing and limit == pending
            ), None
        if wait is None and self._terminal is not None:
            return self._terminal, None
        return None, wait
