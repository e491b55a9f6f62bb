"""The embedded server of ``crucible serve``: a real valkey-server child process."""

import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis

from dispatcher import embedded_redis


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1].startswith("Z")


def test_serves_on_loopback_and_keeps_data_across_restarts(tmp_path: pathlib.Path) -> None:
    with embedded_redis.EmbeddedRedis(tmp_path) as server:
        assert server.url.startswith("redis://127.0.0.1:")
        port = server.port
        with redis.Redis.from_url(server.url) as client:
            client.set("kept", "yes")
            assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert (tmp_path / "appendonlydir").is_dir()

    with (
        embedded_redis.EmbeddedRedis(tmp_path, port=port) as again,
        redis.Redis.from_url(again.url) as client,
    ):
        assert client.get("kept") == b"yes"


def test_one_data_directory_serves_one_dispatcher(tmp_path: pathlib.Path) -> None:
    with embedded_redis.EmbeddedRedis(tmp_path):
        second = embedded_redis.EmbeddedRedis(tmp_path)
        with pytest.raises(embedded_redis.EmbeddedRedisError, match="in use"):
            second.start()
    # Released on stop: the directory can be used again.
    with embedded_redis.EmbeddedRedis(tmp_path) as third:
        assert third.pid is not None


def test_a_taken_port_is_an_error_not_a_hang(tmp_path: pathlib.Path) -> None:
    with embedded_redis.EmbeddedRedis(tmp_path / "a") as first:
        clash = embedded_redis.EmbeddedRedis(tmp_path / "b", port=first.port)
        with pytest.raises(embedded_redis.EmbeddedRedisError, match="did not start"):
            clash.start()


def test_server_dies_with_the_dispatcher(tmp_path: pathlib.Path) -> None:
    """SIGKILL the process that started it: the parent-death signal stops the server."""
    script = (
        "import pathlib, sys, threading\n"
        "from dispatcher import embedded_redis\n"
        "server = embedded_redis.EmbeddedRedis(pathlib.Path(sys.argv[1])).start()\n"
        "print(server.pid, server.port, flush=True)\n"
        "threading.Event().wait()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as owner:
        assert owner.stdout is not None
        pid, port = (int(x) for x in owner.stdout.readline().split())
        with redis.Redis(port=port) as client:
            assert client.ping()
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        wait_until(lambda: process_gone(pid))
