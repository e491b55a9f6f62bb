"""Notice changes in the state directory fast: inotify through ctypes, else a short poll.

inotify wakes the sidecar within microseconds of a write, without a thread: the inotify fd is
registered with the event loop (``add_reader``). Where inotify is missing (not Linux, seccomp,
``max_user_instances`` exhausted) a poll every ``poll_interval`` seconds takes over.
"""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import struct
from collections.abc import Iterable

from wrapper import state

log = logging.getLogger(__name__)

# <sys/inotify.h>
_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_WATCH_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
# Events that say something happened to the directory itself or were lost: always relevant.
_ALWAYS_RELEVANT = _IN_Q_OVERFLOW | _IN_DELETE_SELF | _IN_MOVE_SELF
_EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
_READ_SIZE = 64 * 1024

# The wrapper's files; temp files (".exit.json.xyz") and the sidecar's own files are noise.
WATCHED_NAMES = frozenset(
    {state.STARTED_FILE, state.EXIT_FILE, state.STDOUT_FILE, state.STDERR_FILE}
)


class InotifyUnavailableError(OSError):
    pass


def relevant_names(buffer: bytes) -> Iterable[str]:
    """The file names in a buffer of inotify events ("" for events about the directory)."""
    pos = 0
    while pos + _EVENT_HEADER.size <= len(buffer):
        _wd, mask, _cookie, length = _EVENT_HEADER.unpack_from(buffer, pos)
        pos += _EVENT_HEADER.size
        name = buffer[pos : pos + length].split(b"\0", 1)[0].decode("utf-8", "replace")
        pos += length
        if mask & _ALWAYS_RELEVANT:
            yield ""
        elif name in WATCHED_NAMES:
            yield name


class InotifyWatcher:
    kind = "inotify"

    def __init__(self, directory: str) -> None:
        self._changed = asyncio.Event()
        self._fd = _inotify_open(directory)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                buffer = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                return
            if not buffer:
                return
            if any(True for _ in relevant_names(buffer)):
                self._changed.set()

    async def wait_for_change(self, longest: float) -> None:
        """Return when a wrapper file changed since the last call, or after ``longest`` seconds."""
        try:
            async with asyncio.timeout(longest):
                await self._changed.wait()
        except TimeoutError:
            pass
        # Cleared before the caller looks at the files, so a write during its scan wakes it again.
        self._changed.clear()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


class PollWatcher:
    kind = "poll"

    def __init__(self, interval: float) -> None:
        self._interval = interval

    async def wait_for_change(self, longest: float) -> None:
        await asyncio.sleep(min(longest, self._interval))

    def close(self) -> None:
        pass


Watcher = InotifyWatcher | PollWatcher


def open_watcher(directory: str, *, mode: str, poll_interval: float) -> Watcher:
    """An inotify watcher if ``mode`` allows and the kernel offers it, else a poll watcher."""
    if mode != "poll":
        try:
            return InotifyWatcher(directory)
        except InotifyUnavailableError as e:
            if mode == "inotify":
                raise
            log.warning("inotify unavailable (%s); polling every %gs", e, poll_interval)
    return PollWatcher(poll_interval)


def _inotify_open(directory: str) -> int:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError) as e:
        raise InotifyUnavailableError(f"no inotify in libc: {e}") from e
    add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    fd = int(init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        errno = ctypes.get_errno()
        raise InotifyUnavailableError(errno, f"inotify_init1: {os.strerror(errno)}")
    if add_watch(fd, os.fsencode(directory), _WATCH_MASK) < 0:
        errno = ctypes.get_errno()
        os.close(fd)
        raise InotifyUnavailableError(errno, f"inotify_add_watch {directory}: {os.strerror(errno)}")
    return fd
