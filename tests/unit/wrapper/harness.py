"""The wrapper tests' harness: the test's channel peer (a minimal stand-in for the sidecar's end
of the channel, on a real Unix socket) and the pid-namespace probe."""

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
from typing import Any

import pytest

from wire import channel

PEER_SECONDS = 60.0  # the longest a peer waits for a connection or a frame


class ChannelPeer:
    """The test's channel peer: accepts the first connection only, ACKs its HELLO (unless told
    not to) and records every frame until the wrapper closes.

    ``ack=False``: never ACK. ``close_after=KIND``: hang up once a frame of that kind arrived.
    ``listen_after=S``: create the socket only S seconds after start (a slow sidecar).
    """

    def __init__(
        self,
        ack: bool = True,
        close_after: bytes | None = None,
        listen_after: float = 0.0,
    ) -> None:
        # Short: a socket path must fit into sun_path (108 bytes); pytest's tmp_path may not.
        self.directory = pathlib.Path(tempfile.mkdtemp(prefix="crucible-peer-"))
        self.directory.chmod(0o755)  # an unprivileged wrapper must reach the socket
        self.path = self.directory / "channel.sock"
        self.frames: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.closed_by_wrapper = False
        self._ack = ack
        self._close_after = close_after
        self._listen_after = listen_after
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def kinds(self) -> list[bytes]:
        with self._lock:
            return [kind for kind, _ in self.frames]

    def records(self, kind: bytes) -> list[dict[str, Any]]:
        with self._lock:
            return [channel.parse_json(data) for k, data in self.frames if k == kind]

    def record(self, kind: bytes) -> dict[str, Any]:
        (only,) = self.records(kind)
        return only

    def output(self, stream: str) -> bytes:
        kind = {"stdout": channel.STDOUT, "stderr": channel.STDERR}[stream]
        with self._lock:
            return b"".join(data for k, data in self.frames if k == kind)

    def join(self, timeout: float = PEER_SECONDS) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the channel peer is still reading"

    def stop(self) -> None:
        self._stop.set()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv
        self._thread.join(PEER_SECONDS)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _serve(self) -> None:
        if self._stop.wait(self._listen_after):
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(self.path))
            self.path.chmod(0o777)
            listener.listen(8)
            listener.settimeout(0.05)
            conn = self._accept(listener)
        if conn is None:
            return
        self._conn = conn
        with conn:
            conn.settimeout(PEER_SECONDS)
            try:
                self._record(conn)
            except OSError:
                if not self._stop.is_set():
                    raise

    def _accept(self, listener: socket.socket) -> socket.socket | None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            return conn
        return None

    def _record(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            header = _receive(conn, channel.HEADER.size)
            if len(header) < channel.HEADER.size:
                self.closed_by_wrapper = not header
                return
            kind, length = channel.parse_header(header)
            payload = _receive(conn, length)
            assert len(payload) == length, "the wrapper closed in the middle of a frame"
            with self._lock:
                self.frames.append((kind, payload))
            if kind == channel.HELLO and self._ack:
                conn.sendall(channel.json_frame(channel.ACK, {"v": channel.VERSION}))
            if kind == self._close_after:
                return


def _receive(conn: socket.socket, size: int) -> bytes:
    """``size`` bytes, or fewer at end of file (MSG_WAITALL alone stops short with a timeout)."""
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def can_unshare_pid() -> bool:
    """Root and unshare(1): the wrapper can run as PID 1 of a new pid namespace."""
    if os.geteuid() != 0:
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


UNSHARE_PID = ["unshare", "--pid", "--fork", "--mount-proc"]
needs_pid_namespace = pytest.mark.skipif(
    not can_unshare_pid(), reason="needs root and unshare(1) for a pid namespace"
)
