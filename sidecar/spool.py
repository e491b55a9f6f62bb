"""The spool: the sidecar's own copy of each output stream, and the accepted-channel marker.

Why not the wrapper's files: user code can rewrite or replace anything in the shared volume.
The spool is a directory only the sidecar reaches (an emptyDir mounted in its container alone).
Even so, every file here is created with O_CREAT|O_EXCL|O_NOFOLLOW, so something already at
the path (a planted file, a symlink) makes the creation fail instead of being followed, and an
output file is then used through its descriptor only, never opened by path again.

The cap is enforced here, whatever the wrapper sends: at most ``cap`` bytes per stream, then
``wire.channel.TRUNCATION_MARKER`` once; everything after is dropped and counted.
"""

import contextlib
import os
import stat

from sidecar import builders, errors
from wire import channel, event_dicts

# Exists once this sidecar (or an earlier run of it in the same pod) accepted the channel.
MARKER_NAME = channel.ACCEPTED_MARKER
_CREATE = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def restarted(directory: str) -> bool:
    """True if a channel was accepted before: this is a restarted sidecar (``lexists``: a
    symlink counts too, and is not followed)."""
    return os.path.lexists(os.path.join(directory, MARKER_NAME))


def claim(directory: str) -> None:
    """Create the marker; SpoolError if it is there already or cannot be made."""
    os.close(_create(directory, MARKER_NAME, os.O_WRONLY))


def _create(directory: str, name: str, access: int) -> int:
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, _CREATE | access, 0o600)
    except OSError as e:
        raise errors.SpoolError(f"cannot create {path}: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise errors.SpoolError(f"{path} is not a regular file")
    return fd


class StreamSpool:
    """One stream's bytes, appended up to the cap and read back by offset."""

    def __init__(self, fd: int, cap: int) -> None:
        self._fd = fd
        self._cap = cap
        self.size = 0
        self.kept = 0  # bytes of the stream itself (the marker not counted)
        self.dropped = 0
        self.truncated = False

    @classmethod
    def create(cls, directory: str, stream: builders.Stream, cap: int) -> "StreamSpool":
        return cls(_create(directory, stream, os.O_RDWR), cap)

    def append(self, data: bytes) -> None:
        """Keep what fits under the cap; past it, write the marker once and count the rest."""
        room = self._cap - self.kept
        if len(data) <= room:
            self._write(data)
            self.kept += len(data)
            return
        self._write(data[:room])
        self.kept += room
        self.dropped += len(data) - room
        if not self.truncated:
            self.truncated = True
            self._write(channel.TRUNCATION_MARKER)

    def read(self, offset: int, limit: int) -> bytes:
        return os.pread(self._fd, min(limit, max(0, self.size - offset)), offset)

    def tail(self) -> str:
        """The last characters of the stream, for a terminal event."""
        start = max(0, self.size - event_dicts.TAIL_READ_BYTES)
        return event_dicts.tail_of_bytes(self.read(start, self.size - start))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self._fd, view, self.size)
                self.size += written
                view = view[written:]
        except OSError as e:  # e.g. the emptyDir is full: what follows could not be published
            raise errors.SpoolError(f"cannot write the spool: {e.strerror}") from e


class Spool:
    """Both streams' spools, created together or not at all."""

    def __init__(self, directory: str, cap: int) -> None:
        self.streams: dict[builders.Stream, StreamSpool] = {}
        try:
            for stream in builders.STREAMS:
                self.streams[stream] = StreamSpool.create(directory, stream, cap)
        except errors.SpoolError:
            self.close()
            raise

    def close(self) -> None:
        for spooled in self.streams.values():
            spooled.close()

    @property
    def truncated(self) -> bool:
        return any(s.truncated for s in self.streams.values())

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.streams.values())
