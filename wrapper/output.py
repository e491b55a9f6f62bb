"""Copy one of the child's output pipes to the wrapper's own stream and to a capped state file.

Bytes in, bytes out: nothing is decoded, so binary output survives. Past the cap the state file
gets the truncation marker once and nothing more, but the pipe is still drained and passed
through, so the child never blocks on a full pipe and ``kubectl logs`` still sees everything.
"""

import contextlib
import os
import select
import sys
from typing import Callable, Optional, Tuple, Union

from wrapper import state

# One read takes up to a whole (enlarged) pipe buffer: few syscalls for 200 MB of output.
READ_CHUNK_BYTES = 1024 * 1024
PIPE_BUFFER_BYTES = 1024 * 1024
# fcntl.F_SETPIPE_SZ only exists as a name from Python 3.10; the value is Linux's.
_F_SETPIPE_SZ = 1031
# os.splice (Python 3.10+, Linux) moves pipe pages without copying them through the wrapper:
# used for what only passes through, once the state file is full. Older Pythons copy.
_SPLICE: Optional[Callable[[int, int, int], int]] = getattr(os, "splice", None)


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
    """One stream of the child: ``source_fd`` (pipe) to ``passthrough_fd`` and a capped file."""

    def __init__(self, source_fd: int, passthrough_fd: int, path: str, cap_bytes: int) -> None:
        self.source_fd = source_fd
        self.truncated = False
        self._passthrough_fd: Optional[int] = passthrough_fd
        self._path = path
        self._file_fd: Optional[int] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._room = cap_bytes
        self._source_open = True
        self._splice = _SPLICE

    @property
    def source_open(self) -> bool:
        return self._source_open

    def pump(self) -> bool:
        """Copy what the pipe holds (one read); False once the pipe is at end of file."""
        if self.truncated and self._passthrough_fd is not None and self._splice is not None:
            try:
                moved = self._splice(self.source_fd, self._passthrough_fd, READ_CHUNK_BYTES)
            except OSError:
                # Not spliceable (some files, a non-blocking or broken stdout): copy instead.
                self._splice = None
            else:
                if moved == 0:
                    self.close_source()
                return moved > 0
        data = os.read(self.source_fd, READ_CHUNK_BYTES)
        if not data:
            self.close_source()
            return False
        self._pass_through(data)
        self._capture(data)
        return True

    def close_source(self) -> None:
        if self._source_open:
            self._source_open = False
            os.close(self.source_fd)

    def close(self) -> None:
        """Close the pipe and the state file (nothing is buffered: every chunk is written)."""
        self.close_source()
        if self._file_fd is not None:
            fd, self._file_fd = self._file_fd, None
            os.close(fd)

    def _pass_through(self, data: bytes) -> None:
        if self._passthrough_fd is None:
            return
        try:
            write_all(self._passthrough_fd, data)
        except OSError:
            # Our own stdout/stderr is gone (closed pipe, no terminal): keep capturing.
            self._passthrough_fd = None

    def _capture(self, data: bytes) -> None:
        if self._file_fd is None or self.truncated:
            return
        try:
            if len(data) <= self._room:
                write_all(self._file_fd, data)
                self._room -= len(data)
                return
            write_all(self._file_fd, memoryview(data)[: self._room])
            self._room = 0
            self.truncated = True
            write_all(self._file_fd, state.TRUNCATION_MARKER)
        except OSError as error:
            # A full volume must not stop the run: the rest only goes to the wrapper's stream.
            self.truncated = True
            sys.stderr.write(f"crucible-wrapper: stopped capturing {self._path}: {error}\n")
            sys.stderr.flush()
