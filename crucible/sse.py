"""An incremental ``text/event-stream`` decoder, shared by the sync and the async client.

It is fed bytes as they arrive, not lines: a terminal event carries output tails of up to
64 Ki characters, JSON-escaped, which is longer than aiohttp's line reader takes. It follows
the WHATWG rules the dispatcher relies on (``id``, ``event``, ``data``, comments; ``retry``
is ignored) with LF or CRLF line ends.
"""

import dataclasses

from crucible import errors

# A line longer than this is not an event the dispatcher sends (its largest is below 2 MiB).
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Message:
    id: str | None
    """The last ``id:`` seen so far (it carries over to later messages, as SSE says)."""
    event: str
    data: str


class Decoder:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._last_id: str | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Message]:
        """The messages ``chunk`` completes. An unfinished one at the end of the stream is
        dropped, as SSE says."""
        self._buffer += chunk
        found: list[Message] = []
        while (end := self._buffer.find(b"\n", self._scanned)) >= 0:
            line = bytes(self._buffer[:end]).removesuffix(b"\r")
            del self._buffer[: end + 1]
            self._scanned = 0
            message = self._line(line.decode("utf-8", "replace"))
            if message is not None:
                found.append(message)
        self._scanned = len(self._buffer)
        if self._scanned > MAX_LINE_BYTES:
            raise errors.ProtocolError(f"an event stream line is over {MAX_LINE_BYTES} bytes")
        return found

    def _line(self, line: str) -> Message | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the dispatcher's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\x00" not in value:
            self._last_id = value
        return None

    def _dispatch(self) -> Message | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return Message(id=self._last_id, event=event or "message", data="\n".join(data))
