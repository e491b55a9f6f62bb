"""Follows the wrapper's state directory and feeds the outbox (the producer side).

Each look is cheap (two stats and, until they exist, two small JSON reads), so it runs on the
event loop, and so are the tails read at the end when they are small (``INLINE_READ_BYTES`` in
all); bigger tails (up to 256 KiB per stream) go to a thread. The order of a look matters:
``exit.json`` is read before the output files are measured, and the wrapper writes it only after
flushing them, so sizes measured after it are final.
"""

import asyncio
import json
import os
from typing import Any

from sidecar import builders, outbox, watcher
from wrapper import state

# With inotify a missed wake-up is not expected; a slow look anyway costs nothing and covers it.
SAFETY_LOOK_SECONDS = 1.0
# Tails up to this many bytes in all are read on the event loop; bigger ones in a thread.
INLINE_READ_BYTES = 64 * 1024


class StateTail:
    def __init__(self, eval_id: str, state_dir: str, box: outbox.Outbox) -> None:
        self._eval_id = eval_id
        self._dir = state_dir
        self._box = box
        self._started = False
        self.ended = False

    async def follow(self, changes: watcher.Watcher) -> None:
        """Look after every change until the evaluation ends (or the task is cancelled)."""
        while not await self.look():
            await changes.wait_for_change(SAFETY_LOOK_SECONDS)

    async def look(self) -> bool:
        """Feed what changed into the outbox; True once the evaluation has ended."""
        if self.ended:
            return True
        if not self._started:
            started = state.read_json(self._dir, state.STARTED_FILE)
            if started is not None:
                self._started = True
                event = builders.running_event(self._eval_id, started)
                self._box.add_running(outbox.EventItem(event, builders.RUNNING_TOKEN))
        exit_record = self._read_exit()
        sizes = {stream: self._size(stream) for stream in builders.STREAMS}
        for stream, size in sizes.items():
            self._box.observe(stream, size)
        if exit_record is None:
            return False
        if sum(min(size, builders.TAIL_READ_BYTES) for size in sizes.values()) <= INLINE_READ_BYTES:
            # Small tails (the usual case) are read at once: a thread hop costs more than the read,
            # and this is on the path from the end to the terminal event.
            output, error = self._read_tails(sizes)
        else:
            output, error = await asyncio.to_thread(self._read_tails, sizes)
        event = builders.terminal_event(self._eval_id, exit_record, output=output, error=error)
        self._box.add_terminal(outbox.EventItem(event, builders.TERMINAL_TOKEN))
        self.ended = True
        return True

    def _read_exit(self) -> dict[str, Any] | None:
        """The exit record; None while there is none. It is renamed into place whole, so one
        that does not parse is malformed, not half-written: ``{}`` makes it an error verdict."""
        try:
            with open(os.path.join(self._dir, state.EXIT_FILE), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def _size(self, stream: builders.Stream) -> int:
        try:
            return os.stat(os.path.join(self._dir, stream)).st_size
        except FileNotFoundError:
            return 0

    def _read_tails(self, sizes: dict[builders.Stream, int]) -> tuple[str, str]:
        output, error = (self._read_tail(s, sizes[s]) for s in builders.STREAMS)
        return output, error

    def _read_tail(self, stream: builders.Stream, size: int) -> str:
        return read_tail(os.path.join(self._dir, stream), size)


def read_tail(path: str, size: int | None = None) -> str:
    """The tail of an output file as text, read up to ``size`` bytes (default: its current end);
    "" if it cannot be read. Also the local backend's, so both tell the same tail."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END) if size is None else size
            f.seek(max(0, end - builders.TAIL_READ_BYTES))
            return builders.tail_text(f.read(min(end, builders.TAIL_READ_BYTES)))
    except OSError:
        return ""
