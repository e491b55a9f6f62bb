"""Copy one of the child's output pipes to the wrapper's own stream and, capped, to the channel.

Bytes in, bytes out: nothing is decoded, so binary output survives. At the cap the channel gets
the bytes up to it, then the truncation marker once, and nothing more; the pipe is still drained
and passed through, so the child never blocks on a full pipe and ``kubectl logs`` sees it all.
"""

import contextlib
import os
import select
import sys
from typing import TYPE_CHECKING, Callable, Optional, Tuple, Union

from wire import channel

if TYPE_CHECKING:  # link imports this module (for say)
    from wrapper import link

# One read takes up to a whole (enlarged) pipe buffer: few syscalls for 200 MB of output.
READ_CHUNK_BYTES = 1024 * 1024
PIPE_BUFFER_BYTES = 1024 * 1024
# fcntl.F_SETPIPE_SZ only exists as a name from Python 3.10; the value is Linux's.
_F_SETPIPE_SZ = 1031
# os.splice (Python 3.10+, Linux) moves pipe pages without copying them through the wrapper:
# used for what only passes through, once nothing more goes to the channel. Older Pythons copy.
_SPLICE: Optional[Callable[[int, int, int], int]] = getattr(os, "splice", None)


def say(message: str) -> None:
    """A message of the wrapper's own, on its stderr (between the command's chunks)."""
    sys.stderr.write(f"crucible-wrapper: {message}\n")
    sys.stderr.flush()


def make_pipe() -> Tuple[int, int]:
    """A pipe (read end, write end) with a buffer as large as an unprivileged user may ask."""
    read_fd, write_fd = os.pipe()
    if sys.platform.startswith("linux"):
        import fcntl

        # Fails above /proc/sys/fs/pipe-max-size or the user's pipe quota: keep the default.
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, _F_SETPIPE_SZ, PIPE_BUFFER_BYTES)
    return read_fd, write_fd


def write_all(fd: int, data: Union[bytes, memoryview]) -> None:
    """Write every byte, across partial writes and an inherited non-blocking descriptor."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class CappedTee:
    """One stream of the child: ``source_fd`` (pipe) to ``passthrough_fd`` and, capped, to
    ``link`` as frames of ``kind``."""

    def __init__(
        self,
        source_fd: int,
        passthrough_fd: int,
        sink: "link.Link",
        kind: bytes,
        cap_bytes: int,
    ) -> None:
        self.source_fd = source_fd
        self.truncated = False
        self._passthrough_fd: Optional[int] = passthrough_fd
        self._sink = sink
        self._kind = kind
        self._room = cap_bytes
        self._source_open = True
        self._splice = _SPLICE
        # Reused for every read: no allocation per chunk; the channel copies before it returns.
        self._buffer = bytearray(READ_CHUNK_BYTES)
        self._view = memoryview(self._buffer)

    @property
    def source_open(self) -> bool:
        return self._source_open

    def pump(self) -> bool:
        """Copy what the pipe holds (one read); False once the pipe is at end of file."""
        capturing = not self.truncated and self._sink.alive
        if not capturing and self._passthrough_fd is not None and self._splice is not None:
            try:
                moved = self._splice(self.source_fd, self._passthrough_fd, READ_CHUNK_BYTES)
            except OSError:
                # Not spliceable (some files, a non-blocking or broken stdout): copy instead.
                self._splice = None
            else:
                if moved == 0:
                    self.close_source()
                return moved > 0
        size = os.readv(self.source_fd, [self._buffer])
        if not size:
            self.close_source()
            return False
        data = self._view[:size]
        self._pass_through(data)
        if capturing:
            self._capture(data)
        return True

    def close_source(self) -> None:
        if self._source_open:
            self._source_open = False
            os.close(self.source_fd)

    def _pass_through(self, data: memoryview) -> None:
        if self._passthrough_fd is None:
            return
        try:
            write_all(self._passthrough_fd, data)
        except OSError:
            # Our own stdout/stderr is gone (closed pipe, no terminal): keep capturing.
            self._passthrough_fd = None

    def _capture(self, data: memoryview) -> None:
        if len(data) <= self._room:
            self._room -= len(data)
            self._sink.send_output(self._kind, data)
            return
        self.truncated = True
        if self._room and not self._sink.send_output(self._kind, data[: self._room]):
            return
        self._room = 0
        self._sink.send_output(self._kind, memoryview(channel.TRUNCATION_MARKER))
