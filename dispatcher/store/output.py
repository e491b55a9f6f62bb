"""The full captured output, reassembled from an evaluation's ``output`` events.

Chunks are ordered by ``offset`` (bytes into the stream) and de-duplicated by it (a producer
retry can repeat one). A hole between chunks, or a first chunk past offset 0, means the
evaluation stream was capped (MAXLEN) and lost entries: ``truncated`` says so, as it does when
the wrapper capped its output files.
"""

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import redis.asyncio

from wire import keys

_CHUNK = 1000
STREAMS = ("stdout", "stderr")


@dataclasses.dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    truncated: bool


def assemble(chunks: Iterable[dict[str, Any]], *, capped: bool = False) -> Output:
    """``chunks``: output events as dicts (stream, offset, data). ``capped``: the producer said
    it cut the output (a terminal event's ``truncated``)."""
    by_stream: dict[str, dict[int, str]] = {name: {} for name in STREAMS}
    for chunk in chunks:
        name, offset, data = chunk.get("stream"), chunk.get("offset"), chunk.get("data")
        if name in by_stream and isinstance(offset, int) and isinstance(data, str):
            by_stream[name].setdefault(offset, data)
    texts: dict[str, str] = {}
    holes = False
    for name, pieces in by_stream.items():
        expected = 0
        parts: list[str] = []
        for offset in sorted(pieces):
            # Replacement characters make a chunk's text longer in bytes than the raw bytes it
            # came from, so only a start past the expected offset is certainly a hole.
            holes = holes or offset > expected
            parts.append(pieces[offset])
            expected = offset + len(pieces[offset].encode("utf-8", "surrogatepass"))
        texts[name] = "".join(parts)
    return Output(texts["stdout"], texts["stderr"], truncated=capped or holes)


async def read(client: redis.asyncio.Redis, eval_id: str) -> Output:
    chunks: list[dict[str, Any]] = []
    capped = False
    start = "-"
    while True:
        entries = await client.xrange(keys.eval_stream(eval_id), min=start, count=_CHUNK)
        for _, fields in entries:
            event = json.loads(fields[keys.EVENT_FIELD.encode()])
            if event.get("type") == "output":
                chunks.append(event)
            elif event.get("truncated") is True:
                capped = True
        if len(entries) < _CHUNK:
            return assemble(chunks, capped=capped)
        start = "(" + entries[-1][0].decode()
