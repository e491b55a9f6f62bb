"""The wrapper is tested as it runs in a pod: the packed zipapp, as a real subprocess, under
``python -I -S`` (no site-packages at all), talking to a real Unix socket: the test's channel peer,
a minimal stand-in for the sidecar's end.

``CRUCIBLE_TEST_WRAPPER_PYTHON`` picks the interpreter that runs the wrapper (default: the
test's own), e.g. a Python 3.8 to check the oldest version executor images may have.
"""

import dataclasses
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.unit.wrapper.harness import ChannelPeer
from wire import channel
from wrapper import pack

WRAPPER_PYTHON = os.environ.get("CRUCIBLE_TEST_WRAPPER_PYTHON") or sys.executable
MakePeer = Callable[..., ChannelPeer]


@pytest.fixture
def make_peer() -> Iterator[MakePeer]:
    """``make_peer(**options)``: a started ChannelPeer, stopped and removed after the test."""
    peers: list[ChannelPeer] = []

    def make(**options: Any) -> ChannelPeer:
        peers.append(ChannelPeer(**options))
        return peers[-1]

    yield make
    for peer in peers:
        peer.stop()


@dataclasses.dataclass
class WrapperRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    peer: ChannelPeer

    @property
    def exit(self) -> dict[str, Any]:
        return self.peer.record(channel.EXIT)

    @property
    def started(self) -> dict[str, Any]:
        return self.peer.record(channel.STARTED)

    def output(self, stream: str) -> bytes:
        return self.peer.output(stream)


RunWrapper = Callable[..., WrapperRun]
StartWrapper = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture(scope="session")
def wrapper_app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return pack.build(tmp_path_factory.mktemp("wrapper-app") / pack.FILE_NAME)


@pytest.fixture
def wrapper_argv(wrapper_app: pathlib.Path) -> list[str]:
    return [WRAPPER_PYTHON, "-I", "-S", str(wrapper_app)]


@pytest.fixture
def run_wrapper(wrapper_argv: list[str], make_peer: MakePeer) -> RunWrapper:
    """Run the wrapper to completion: ``run_wrapper(cmd, *options)`` (options before ``--``),
    against a fresh peer unless ``peer=`` is given; ``prefix=`` goes before the wrapper's argv."""

    def run(
        command: Sequence[str],
        *options: str,
        peer: ChannelPeer | None = None,
        prefix: Sequence[str] = (),
        timeout: float = 60,
        **popen: Any,
    ) -> WrapperRun:
        peer = peer or make_peer()
        argv = [*prefix, *wrapper_argv, "--channel", str(peer.path), *options, "--", *command]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            **popen,
        )
        peer.join()
        return WrapperRun(done.returncode, done.stdout, done.stderr, peer)

    return run


@pytest.fixture
def start_wrapper(wrapper_argv: list[str]) -> StartWrapper:
    """Start the wrapper without waiting for it: ``start_wrapper(peer, cmd, *options)``."""

    def start(
        peer: ChannelPeer, command: Sequence[str], *options: str
    ) -> "subprocess.Popen[bytes]":
        argv = [*wrapper_argv, "--channel", str(peer.path), *options, "--", *command]
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    return start


WaitUntil = Callable[[Callable[[], bool], float], None]


@pytest.fixture
def wait_until() -> WaitUntil:
    """Wait for a condition, failing the test after ``timeout`` seconds."""

    def wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout} s")
            time.sleep(0.01)

    return wait


@pytest.fixture
def process_gone() -> Callable[[int], bool]:
    """True once ``pid`` has exited (gone, or a zombie its new parent has not reaped yet)."""

    def gone(pid: int) -> bool:
        try:
            stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        except OSError:
            return not _exists(pid)
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")

    return gone


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
