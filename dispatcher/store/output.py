"""The full captured output, reassembled from an evaluation's ``output`` events.

Chunks are ordered by ``offset`` (bytes into the stream) and de-duplicated by it (a producer
retry can repeat one). A hole between chunks, or a first chunk past offset 0, means the
evaluation stream was capped (MAXLEN) and lost entries: ``truncated`` says so, as it does when
the wrapper capped its output files.

Served in bounded memory (``plan``, then ``texts``): a first pass over the stream keeps only
each chunk's entry id, offset and size; the second fetches the chunks in order, a few at a
time, for the response to write as they come. 8 MiB of output never sits in memory whole.
"""

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

import redis.asyncio

from dispatcher.store import connect
from wire import keys

# Entries read at once: output chunks are up to a sidecar batch (256 KiB) each.
_PAGE = 8
STREAMS = ("stdout", "stderr")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True)
class Output:
    stdout: str
    stderr: str
    truncated: bool


def assemble(chunks: Iterable[dict[str, Any]], *, capped: bool = False) -> Output:
    """``chunks``: output events as dicts (stream, offset, data). ``capped``: the producer said
    it cut the output (a terminal event's ``truncated``)."""
    by_stream: dict[str, dict[int, tuple[str, int]]] = {name: {} for name in STREAMS}
    for chunk in chunks:
        piece = _piece(chunk)
        if piece is not None:
            name, offset, data = piece
            by_stream[name].setdefault(offset, (data, _size(data)))
    texts: dict[str, str] = {}
    holes = False
    for name, pieces in by_stream.items():
        parts, gap = _in_order(pieces)
        texts[name], holes = "".join(parts), holes or gap
    return Output(texts["stdout"], texts["stderr"], truncated=capped or holes)


def _piece(event: dict[str, Any]) -> tuple[str, int, str] | None:
    """(stream, offset, data) of an output event, None for anything else."""
    name, offset, data = event.get("stream"), event.get("offset"), event.get("data")
    if name in STREAMS and isinstance(offset, int) and isinstance(data, str):
        return str(name), offset, data
    return None


def _size(data: str) -> int:
    return len(data.encode("utf-8", "surrogatepass"))


def _in_order(pieces: dict[int, tuple[_T, int]]) -> tuple[list[_T], bool]:
    """The pieces' items by offset, and whether a hole lies before or between them."""
    expected, holes, ordered = 0, False, []
    for offset in sorted(pieces):
        item, size = pieces[offset]
        # Replacement characters make a chunk's text longer in bytes than the raw bytes it
        # came from, so only a start past the expected offset is certainly a hole.
        holes = holes or offset > expected
        ordered.append(item)
        expected = offset + size
    return ordered, holes


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which entries make each stream, in order, and whether anything is missing."""

    entries: dict[str, list[bytes]]
    truncated: bool


async def plan(client: redis.asyncio.Redis, eval_id: str) -> Plan:
    by_stream: dict[str, dict[int, tuple[bytes, int]]] = {name: {} for name in STREAMS}
    capped = False
    start = "-"
    stream = connect.keyspace(client).eval_stream(eval_id)
    while True:
        entries = await client.xrange(stream, min=start, count=_PAGE)
        for entry_id, fields in entries:
            event = json.loads(fields[keys.EVENT_FIELD.encode()])
            piece = _piece(event) if event.get("type") == "output" else None
            if piece is not None:
                name, offset, data = piece
                by_stream[name].setdefault(offset, (entry_id, _size(data)))
            elif event.get("type") != "output":
                capped = capped or event.get("truncated") is True
        if len(entries) < _PAGE:
            break
        start = "(" + entries[-1][0].decode()
    ordered: dict[str, list[bytes]] = {}
    holes = False
    for name, pieces in by_stream.items():
        ordered[name], gap = _in_order(pieces)
        holes = holes or gap
    return Plan(ordered, truncated=capped or holes)


async def texts(client: redis.asyncio.Redis, eval_id: str, ids: list[bytes]) -> AsyncIterator[str]:
    """The chunks ``ids`` name, in that order, fetched ``_PAGE`` at a time."""
    key = connect.keyspace(client).eval_stream(eval_id)
    for first in range(0, len(ids), _PAGE):
        async with client.pipeline(transaction=False) as pipe:
            for entry_id in ids[first : first + _PAGE]:
                pipe.xrange(key, min=entry_id, max=entry_id)
            found = await pipe.execute()
        for rows in found:
            if rows:  # trimmed away since the plan: its text is gone
                yield str(json.loads(rows[0][1][keys.EVENT_FIELD.encode()]).get("data", ""))
