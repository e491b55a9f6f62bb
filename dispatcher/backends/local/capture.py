"""What the local backend collects after a run, for its verdict (``local_verdict``).

- The sidecar's report: its terminal event, as the dispatcher's ingest stored it in the
  evaluation's stream. It carries the wrapper's exit record (timeout flag, the wrapper's own
  error, the child's signal), which came over the channel the wrapper held before user code
  started. None if the sidecar published none (the channel was lost: e.g. the wrapper was
  killed), and then the wait status speaks alone.
- The output tails, from the sidecar's spool in the run's private dir: opened with O_NOFOLLOW
  and read only if they are regular files, so a planted link or FIFO is ignored, not followed.

Nothing is read from the work dir user code is given, nor from any file the wrapper writes.
(User code runs as the dispatcher's user, so it could still reach the spool: what is read there
is output, never the verdict.)
"""

import asyncio
import logging
import os
import pathlib
import stat
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pydantic
import redis.asyncio
import redis.exceptions

from dispatcher.backends.local import verdict as local_verdict
from dispatcher.store import connect
from wire import channel, events, keys

log = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_RETRY_SECONDS = 60.0
# The sidecar's terminal event is its last; only the dispatcher's own (a cancel) may follow.
_REPORT_SEARCH_DEPTH = 16
_RETRIED = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.OutOfMemoryError,
)
# A spool file is the sidecar's; a link or anything but a regular file there is not read.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


async def capture(
    client: redis.asyncio.Redis, eval_id: str, spool: pathlib.Path
) -> local_verdict.Captured:
    report = await redis_retrying(lambda: sidecar_report(client, eval_id), f"read {eval_id}")
    output, out_cut = await asyncio.to_thread(read_tail, spool / "stdout")
    error, err_cut = await asyncio.to_thread(read_tail, spool / "stderr")
    return local_verdict.Captured(
        report=report, output=output, error=error, truncated=out_cut or err_cut
    )


async def sidecar_report(client: redis.asyncio.Redis, eval_id: str) -> events.Event | None:
    """The sidecar's terminal event of ``eval_id``, if it published one."""
    stream = connect.keyspace(client).eval_stream(eval_id)
    reply = await client.xrevrange(stream, count=_REPORT_SEARCH_DEPTH)
    for _, fields in reply:
        try:
            event = events.parse(fields[keys.EVENT_FIELD.encode()])
        except (KeyError, pydantic.ValidationError):
            continue
        if event.source == "sidecar" and event.terminal:
            return event
    return None


def read_tail(path: pathlib.Path) -> tuple[str, bool]:
    """The last characters of a spool file, and whether it ends with the truncation marker;
    ("", False) if it is missing or not a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return "", False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "", False
        size = info.st_size
        start = max(0, size - events.TAIL_READ_BYTES)
        raw = os.pread(fd, size - start, start)
    except OSError:
        return "", False
    finally:
        os.close(fd)
    text = events.tail_of_bytes(raw)
    return text, raw.endswith(channel.TRUNCATION_MARKER)


async def redis_retrying(call: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``call``, retrying while Redis is unreachable (it may be restarting) or full (it
    refuses writes at maxmemory until something expires): a verdict must not be lost."""
    deadline = time.monotonic() + REDIS_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            return await call()
        except _RETRIED as e:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed, retrying: %s", what, e)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
