"""The single publishing task: takes the outbox in order, in batches, until it is closed and empty.

A batch starts with the next item (waiting for it) and takes whatever else is due right now, up
to ``wire.limits.INGEST_BATCH_MAX_EVENTS`` items and ``BODY_TARGET_BYTES``; the terminal event
always ends a batch. Output is read from the spool only when it is taken, and cut where a UTF-8
character is complete, so no character is split across events.
"""

from collections.abc import Sequence
from typing import Protocol

from sidecar import builders, outbox, publisher, spool
from wire import limits

# Far below the ingest limit on purpose: a batch is built in memory (decoded text, then JSON),
# and a fast writer or an absent dispatcher leaves megabytes ready to go at once. Memory is paid
# per pod, round trips are cheap: 256 KiB (four full output events) kept the benchmark's peak
# about 2 MB lower than 1 MiB did. An item bigger than this still goes, alone.
BODY_TARGET_BYTES = min(256 * 1024, limits.INGEST_BODY_MAX_BYTES)


class Sink(Protocol):
    """``publisher.IngestPublisher``: returns once the batch is in, raises if it never will be."""

    async def publish(self, items: Sequence[publisher.Encoded]) -> None: ...


class OutboxDrain:
    def __init__(
        self,
        box: outbox.Outbox,
        spooled: spool.Spool,
        sink: Sink,
        *,
        eval_id: str,
    ) -> None:
        self._box = box
        self._spool = spooled
        self._sink = sink
        self._eval_id = eval_id
        self._carried: publisher.Encoded | None = None
        self.terminal_published = False

    async def run(self) -> None:
        """Publish until the outbox is closed and everything in it is out."""
        while (batch := await self._batch()) is not None:
            await self._sink.publish(batch)
            if batch[-1].terminal:
                self.terminal_published = True

    async def _batch(self) -> list[publisher.Encoded] | None:
        first = self._carried or await self._take_waiting()
        self._carried = None
        if first is None:
            return None
        batch = [first]
        size = publisher.body_size(batch)
        while len(batch) < limits.INGEST_BATCH_MAX_EVENTS and not batch[-1].terminal:
            following = self._take_ready()
            if following is None:
                break
            if size + len(following.json) + 1 > BODY_TARGET_BYTES:
                self._carried = following  # it opens the next batch
                break
            batch.append(following)
            size += len(following.json) + 1
        return batch

    async def _take_waiting(self) -> publisher.Encoded | None:
        while (item := await self._box.next()) is not None:
            if (encoded := self._encode(item)) is not None:
                return encoded
        return None

    def _take_ready(self) -> publisher.Encoded | None:
        while (item := self._box.ready()) is not None:
            if (encoded := self._encode(item)) is not None:
                return encoded
        return None

    def _encode(self, item: outbox.Item) -> publisher.Encoded | None:
        """Take ``item`` from the outbox as JSON; None for output that is only half a character
        so far (the outbox holds it back until more comes or the stream ends)."""
        if isinstance(item, outbox.EventItem):
            self._box.done_event(item)
            return publisher.encode(item.event, item.token)
        raw = self._spool.streams[item.stream].read(item.offset, item.limit)
        data, used = builders.decode_chunk(raw, final=item.final)
        self._box.done_output(item, used)
        if not used:
            return None
        event = builders.output_event(self._eval_id, item.stream, item.offset, data)
        token = builders.output_token(item.stream, item.offset, used)
        return publisher.encode(event, token, output_bytes=used)
