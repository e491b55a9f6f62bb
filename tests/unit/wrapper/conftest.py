"""The wrapper is tested as it runs in a pod: the packed zipapp, as a real subprocess, under
``python -I -S`` (no site-packages at all), against a state directory in ``tmp_path``.

``CRUCIBLE_TEST_WRAPPER_PYTHON`` picks the interpreter that runs the wrapper (default: the
test's own), e.g. a Python 3.8 to check the oldest version executor images may have.
"""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from wrapper import pack, state


@dataclasses.dataclass
class WrapperRun:
    returncode: int
    stdout: bytes
    stderr: bytes
    state_dir: pathlib.Path

    def record(self, name: str) -> dict[str, Any]:
        value = json.loads((self.state_dir / name).read_text(encoding="utf-8"))
        assert isinstance(value, dict)
        return value

    @property
    def exit(self) -> dict[str, Any]:
        return self.record(state.EXIT_FILE)

    @property
    def started(self) -> dict[str, Any]:
        return self.record(state.STARTED_FILE)

    def output(self, name: str) -> bytes:
        return (self.state_dir / name).read_bytes()


RunWrapper = Callable[..., WrapperRun]


@pytest.fixture(scope="session")
def wrapper_app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return pack.build(tmp_path_factory.mktemp("wrapper-app") / pack.FILE_NAME)


WRAPPER_PYTHON = os.environ.get("CRUCIBLE_TEST_WRAPPER_PYTHON") or sys.executable


@pytest.fixture
def wrapper_argv(wrapper_app: pathlib.Path) -> list[str]:
    return [WRAPPER_PYTHON, "-I", "-S", str(wrapper_app)]


@pytest.fixture
def state_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "state"


@pytest.fixture
def run_wrapper(wrapper_argv: list[str], state_dir: pathlib.Path) -> RunWrapper:
    """Run the wrapper to completion: ``run_wrapper(cmd, *options)`` (options before ``--``)."""

    def run(command: Sequence[str], *options: str, timeout: float = 60) -> WrapperRun:
        argv = [*wrapper_argv, "--state-dir", str(state_dir), *options, "--", *command]
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        return WrapperRun(done.returncode, done.stdout, done.stderr, state_dir)

    return run


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
