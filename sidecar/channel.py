"""The sidecar's end of the wrapper channel (``wire.channel``): one listener, one connection.

The listener exists only until the first connection: the wrapper connects before it starts user
code, so the first connection is the wrapper's; the listener is closed and its socket unlinked
at once, and nobody can connect after that. The socket appears at its path already listening
and world-connectable (bound under a temporary name, chmodded, then renamed into place), so the
startup probe that waits for the path never lets the wrapper find one it cannot use yet.
"""

import asyncio
import contextlib
import logging
import os
import socket
import struct

from wire import channel

log = logging.getLogger(__name__)
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

# The main container's user must be able to connect; the directory (read-only there) protects
# the socket from being replaced.
SOCKET_MODE = 0o666


class Listener:
    def __init__(self, path: str, *, peer_parent_pid: int | None = None) -> None:
        """``peer_parent_pid``: accept only a peer that is a child of this process."""
        self._path = path
        self._peer_parent_pid = peer_parent_pid
        self._sock: socket.socket | None = None

    def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)  # stale, from an earlier run of this container
        staging = f"{self._path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(staging)
            os.chmod(staging, SOCKET_MODE)
            sock.listen(1)
            sock.setblocking(False)
            os.rename(staging, self._path)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staging)
            raise
        self._sock = sock

    async def accept(self) -> socket.socket:
        """The first connection; the listener is closed and the socket unlinked before return."""
        if self._sock is None:
            raise RuntimeError("the listener is not open")
        loop = asyncio.get_running_loop()
        try:
            while True:
                conn, _ = await loop.sock_accept(self._sock)
                if self._peer_parent_pid is None or _parent_of_peer(conn) == self._peer_parent_pid:
                    return conn
                log.warning("refused a connection from a process that is not the wrapper")
                conn.close()
        finally:
            self.close()

    def close(self) -> None:
        """Stop listening: connections still queued are refused, new ones find no socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)


def _parent_of_peer(conn: socket.socket) -> int | None:
    """The parent pid of the connected process (Linux), None if it cannot be known."""
    try:
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid = _UCRED.unpack(raw)[0]
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (OSError, AttributeError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ')'.
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next frame as (kind, payload); None at a clean end (EOF between frames).

    Raises ``channel.ProtocolError`` for a frame that breaks the contract or is cut short.
    """
    try:
        header = await reader.readexactly(channel.HEADER.size)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise channel.ProtocolError("the connection closed inside a frame header") from None
    kind, length = channel.parse_header(header)
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise channel.ProtocolError("the connection closed inside a frame") from None
    return kind, payload
