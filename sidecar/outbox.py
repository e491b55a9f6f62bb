"""The one ordered outbox between the channel session (producer) and the publisher.

Order is fixed: ``running``, then output in the order it was first seen, then the terminal event
once every output byte before it is out. Output is not copied into memory: the outbox holds, per
stream, how far the spool has been taken and how big it is, and the publisher reads the next
chunk from the spool when it takes it. So output waiting for the dispatcher costs no memory and
coalesces by itself into full-size chunks; the spool's cap bounds it. ``running`` and the
terminal event are never dropped.

Batching: new output is due when ``batch_bytes`` are waiting, or ``batch_interval`` after it was
first seen, or at once when the evaluation has ended, the channel is closed or the sidecar is
stopping.

An item is taken (``next`` or ``ready``) and then marked done (``done_event``/``done_output``)
before the next is taken; the publisher retries a taken item until it is out, or gives up
for good, so nothing taken ever comes back.
"""

import asyncio
import dataclasses
import time
from collections.abc import Callable

from sidecar import builders
from wire import event_dicts


@dataclasses.dataclass(frozen=True)
class EventItem:
    event: event_dicts.EventDict
    token: str


@dataclasses.dataclass(frozen=True)
class OutputItem:
    """Read up to ``limit`` bytes of ``stream`` at ``offset`` and publish them.

    ``final``: the bytes end the stream, so an incomplete character at the end is decoded
    (as a replacement mark) instead of held back.
    """

    stream: builders.Stream
    offset: int
    limit: int
    final: bool = False


Item = EventItem | OutputItem


@dataclasses.dataclass
class _Cursor:
    taken: int = 0
    size: int = 0
    pending_since: float | None = None
    # The size at which the only untaken bytes were an incomplete character.
    stalled_at: int | None = None


class Outbox:
    def __init__(
        self,
        *,
        batch_bytes: int,
        batch_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._batch_bytes = batch_bytes
        self._batch_interval = batch_interval
        self._clock = clock
        self._cursors = {stream: _Cursor() for stream in builders.STREAMS}
        self._running: EventItem | None = None
        self._terminal: EventItem | None = None
        self._started = False
        self._closed = False
        self._hurried = False
        self._changed = asyncio.Event()
        self.ended = False

    def add_running(self, item: EventItem) -> None:
        if not self._started:
            self._started = True
            self._running = item
            self._changed.set()

    def observe(self, stream: builders.Stream, size: int) -> None:
        """The spool of ``stream`` now holds ``size`` bytes (spools only grow)."""
        cursor = self._cursors[stream]
        if size <= cursor.size:
            return
        if cursor.pending_since is None:
            cursor.pending_since = self._clock()
        cursor.size = size
        self._changed.set()

    def add_terminal(self, item: EventItem) -> None:
        """The evaluation ended: sizes observed so far are final; ``item`` goes out last."""
        if not self.ended:
            self.ended = True
            self._terminal = item
            self._changed.set()

    def close(self) -> None:
        """No more input: send everything now; ``next`` returns None once all is taken."""
        self._closed = True
        self._changed.set()

    def hurry(self) -> None:
        """Stopping: output is due at once, not after the batch interval; input may still come."""
        self._hurried = True
        self._changed.set()

    def unpublished_bytes(self) -> int:
        return sum(c.size - c.taken for c in self._cursors.values())

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

    def ready(self) -> Item | None:
        """The next item if one is due now (to fill a batch); never waits."""
        return self._choose(self._clock())[0]

    def done_event(self, item: EventItem) -> None:
        if item is self._running:
            self._running = None
        elif item is self._terminal:
            self._terminal = None

    def done_output(self, item: OutputItem, length: int) -> None:
        """``length`` bytes at ``item.offset`` are taken (0: only a split character waits)."""
        cursor = self._cursors[item.stream]
        if length == 0:
            cursor.stalled_at = cursor.size
            return
        cursor.stalled_at = None
        cursor.taken = max(cursor.taken, item.offset + length)
        cursor.pending_since = self._clock() if cursor.size > cursor.taken else None

    def _choose(self, now: float) -> tuple[Item | None, float | None]:
        if self._running is not None:
            return self._running, None
        # Output waits for running (or for the end, when the command never started).
        if not (self._started or self.ended or self._closed):
            return None, None
        flushing = self.ended or self._closed
        best: tuple[float, builders.Stream] | None = None
        wait: float | None = None
        for stream, cursor in self._cursors.items():
            pending = cursor.size - cursor.taken
            if pending <= 0 or (cursor.stalled_at == cursor.size and not flushing):
                continue
            since = cursor.pending_since if cursor.pending_since is not None else now
            due = since if self._hurried else since + self._batch_interval
            if flushing or pending >= self._batch_bytes or now >= due:
                if best is None or since < best[0]:
                    best = (since, stream)
            else:
                wait = due - now if wait is None else min(wait, due - now)
        if best is not None:
            cursor = self._cursors[best[1]]
            pending = cursor.size - cursor.taken
            limit = min(pending, self._batch_bytes)
            final = flushing and limit == pending
            return OutputItem(best[1], cursor.taken, limit, final=final), None
        if wait is None and self._terminal is not None:
            return self._terminal, None
        return None, wait
