"""The wrapper's end of the channel to the sidecar (the frames are ``wire.channel``'s).

Opened before user code starts, so it is the sidecar's first (and only) connection. Python makes
every socket non-inheritable, so the command never gets it. Once a send fails the channel is lost
for good: the wrapper keeps running the command and passing its output through, sends nothing
more and does not reconnect (a new connection would not be the first, and proves nothing).
"""

import os
import socket
import time
from typing import Any, Dict, List, Optional

from wire import channel
from wrapper import output

# A sidecar that stops reading must not stall the command for ever: after this long without
# room in the socket, the channel counts as lost.
SEND_TIMEOUT_SECONDS = 30.0
# Between attempts while the sidecar's socket is not there yet (it starts alongside).
RETRY_SECONDS = 0.01


class ConnectError(Exception):
    """No channel within the connect timeout; user code must not run."""


def connect(path: str, timeout_seconds: float) -> "Link":
    """Connect to the sidecar at ``path``, say HELLO and wait for its ACK, within the timeout."""
    deadline = time.monotonic() + timeout_seconds
    sock = _connect_retrying(path, deadline)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        _send_all(sock, [channel.json_frame(channel.HELLO, channel.hello_record(os.getpid()))])
        _await_ack(sock)
        sock.settimeout(SEND_TIMEOUT_SECONDS)
    except (OSError, channel.ProtocolError) as error:
        sock.close()
        raise ConnectError(f"no ACK from the sidecar at {path}: {_describe(error)}") from error
    return Link(sock)


class Link:
    def __init__(self, sock: socket.socket) -> None:
        self._sock: Optional[socket.socket] = sock

    @property
    def alive(self) -> bool:
        return self._sock is not None

    def send_record(self, kind: bytes, record: Dict[str, Any]) -> bool:
        return self._send([channel.json_frame(kind, record)])

    def send_output(self, kind: bytes, data: memoryview) -> bool:
        """Send ``data`` as frames of at most MAX_CHUNK, in one system call when it fits."""
        buffers: List[Any] = []
        for start in range(0, len(data), channel.MAX_CHUNK):
            piece = data[start : start + channel.MAX_CHUNK]
            buffers += [channel.HEADER.pack(kind, len(piece)), piece]
        return self._send(buffers)

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            sock.close()

    def _send(self, buffers: List[Any]) -> bool:
        if self._sock is None:
            return False
        try:
            _send_all(self._sock, buffers)
        except OSError as error:
            output.say(
                f"channel to the sidecar lost ({_describe(error)}): the command goes on, its "
                "output now reaches only the wrapper's own stdout and stderr"
            )
            self.close()
            return False
        return True


def _connect_retrying(path: str, deadline: float) -> socket.socket:
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))  # a full backlog blocks
            sock.connect(path)
            return sock
        except OSError as error:
            sock.close()
            # Not there yet (ENOENT), not listening yet (ECONNREFUSED), backlog full (EAGAIN).
            if time.monotonic() + RETRY_SECONDS >= deadline:
                raise ConnectError(
                    f"no channel to the sidecar at {path}: {_describe(error)}"
                ) from error
        time.sleep(RETRY_SECONDS)


def _await_ack(sock: socket.socket) -> None:
    kind, length = channel.parse_header(_receive(sock, channel.HEADER.size))
    if kind != channel.ACK:
        raise channel.ProtocolError(f"first frame from the sidecar is {kind!r}, not ACK")
    record = channel.parse_json(_receive(sock, length))
    if record.get("v") != channel.VERSION:
        raise channel.ProtocolError(f"sidecar speaks version {record.get('v')!r}")


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise channel.ProtocolError("the sidecar closed the connection")
        data += chunk
    return data


def _send_all(sock: socket.socket, buffers: List[Any]) -> None:
    """``sendmsg`` until every byte is out: no concatenation, and partial sends resume."""
    views = [memoryview(buffer) for buffer in buffers]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
