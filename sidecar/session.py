"""One channel session: the wrapper's frames in, the spool and the outbox fed.

HELLO must come first (else the connection is dropped and nothing is published); ACK tells the
wrapper the channel is held, and only then does it start user code. STARTED becomes ``running``,
STDOUT/STDERR go to the spool (capped there), EXIT becomes the terminal event. A connection that
ends without EXIT, or breaks the contract, is a lost channel: the outbox is flushed, but no
terminal event is made up; the dispatcher's reconciler gives the verdict.
"""

import asyncio
import enum
import logging
from typing import Any

from sidecar import builders, channel, errors, outbox, spool
from wire import channel as wire
from wire import event_dicts

log = logging.getLogger(__name__)

_STREAMS: dict[bytes, builders.Stream] = {wire.STDOUT: "stdout", wire.STDERR: "stderr"}


class Outcome(enum.Enum):
    ENDED = "ended"  # EXIT received: the terminal event is in the outbox
    LOST = "lost"  # no EXIT: no verdict from this sidecar
    REFUSED = "refused"  # no valid HELLO: the connection was not the wrapper's


class Session:
    def __init__(self, eval_id: str, box: outbox.Outbox, spooled: spool.Spool) -> None:
        self._eval_id = eval_id
        self._box = box
        self._spool = spooled
        self._started = False
        self.outcome: Outcome | None = None

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Outcome:
        """Serve the connection to its end; the outbox is closed however it ends."""
        self.outcome = Outcome.LOST
        try:
            if not await self._handshake(reader, writer):
                self.outcome = Outcome.REFUSED
            else:
                self.outcome = await self._follow(reader)
        except (wire.ProtocolError, errors.SpoolError, OSError) as e:
            log.warning("channel lost: %s; no verdict from the sidecar", e)
        finally:
            self._box.close()
            writer.close()
        return self.outcome

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            first = await channel.read_frame(reader)
            if first is None or first[0] != wire.HELLO:
                raise wire.ProtocolError("the first frame is not HELLO")
            version = wire.parse_json(first[1]).get("v")
            if version != wire.VERSION:
                raise wire.ProtocolError(f"channel version {version!r}, not {wire.VERSION}")
        except wire.ProtocolError as e:
            log.error("channel refused: %s; nothing will be published", e)
            return False
        writer.write(wire.json_frame(wire.ACK, {"v": wire.VERSION}))
        await writer.drain()
        log.info("channel held for %s", self._eval_id)
        return True

    async def _follow(self, reader: asyncio.StreamReader) -> Outcome:
        while (received := await channel.read_frame(reader)) is not None:
            kind, payload = received
            if kind in _STREAMS:
                self._output(_STREAMS[kind], payload)
            elif kind == wire.STARTED and not self._started:
                self._started = True
                event = builders.running_event(self._eval_id, wire.parse_json(payload))
                self._box.add_running(outbox.EventItem(event, builders.RUNNING_TOKEN))
            elif kind == wire.EXIT:
                self._exit(wire.parse_json(payload))
                return Outcome.ENDED
            else:
                raise wire.ProtocolError(f"unexpected frame {kind!r}")
        log.warning("channel lost: closed before EXIT; no verdict from the sidecar")
        return Outcome.LOST

    def _output(self, stream: builders.Stream, data: bytes) -> None:
        spooled = self._spool.streams[stream]
        spooled.append(data)
        self._box.observe(stream, spooled.size)

    def _exit(self, record: dict[str, Any]) -> None:
        streams = self._spool.streams
        event = builders.terminal_event(
            self._eval_id,
            record,
            output=streams["stdout"].tail(),
            error=streams["stderr"].tail(),
            truncated=self._spool.truncated,
        )
        self._box.add_terminal(outbox.EventItem(event, builders.TERMINAL_TOKEN))
        # Logged once the publishing task has had its turn (it was woken first): its POST of
        # the terminal event is on the wire before this line is formatted and written.
        asyncio.get_running_loop().call_soon(
            log.info, "exit received: %s", event_dicts.verdict(event)
        )
