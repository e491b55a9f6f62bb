"""Timeouts, forwarded signals, and processes the command leaves behind."""

import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import pytest

from wrapper import state

PY = [sys.executable, "-I", "-S", "-c"]

IGNORE_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(600)
"""

# The handler may interrupt print("ready") itself: os.write avoids a reentrant print.
REPORT_SIGNALS = """
import os, signal, sys, time
def report(number, frame):
    os.write(1, b"got %d\\n" % number)
    os._exit(7)
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(number, report)
print("ready", flush=True)
time.sleep(600)
"""


def test_timeout_kills_a_child_that_ignores_sigterm_after_the_grace(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, IGNORE_SIGTERM], "--timeout", "2", "--grace", "0.5")

    assert run.stdout == b"ready\n"  # SIGTERM was ignored, so only SIGKILL could end it
    assert run.returncode == 128 + signal.SIGKILL
    assert run.exit["exit_code"] == 128 + signal.SIGKILL
    assert run.exit["signal"] == signal.SIGKILL
    assert run.exit["timed_out"] is True


def test_timeout_terminates_a_child_with_sigterm_first(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, "import time; time.sleep(600)"], "--timeout", "0.5")

    assert run.returncode == 128 + signal.SIGTERM
    assert run.exit["signal"] == signal.SIGTERM
    assert run.exit["timed_out"] is True


def test_command_that_ends_in_time_is_not_timed_out(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, "pass"], "--timeout", "60")

    assert run.returncode == 0
    assert run.exit["timed_out"] is False


def _start_wrapper(
    wrapper_argv: list[str],
    state_dir: pathlib.Path,
    options: list[str],
    command: list[str],
    wait_until: Any,
) -> "subprocess.Popen[bytes]":
    argv = [*wrapper_argv, "--state-dir", str(state_dir), *options, "--", *command]
    wrapper = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout_file = state_dir / state.STDOUT_FILE
    wait_until(lambda: stdout_file.exists() and b"ready" in stdout_file.read_bytes(), 30)
    return wrapper


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_the_wrapper_is_forwarded_to_the_command(
    wrapper_argv: list[str], state_dir: pathlib.Path, wait_until: Any, number: int
) -> None:
    with _start_wrapper(wrapper_argv, state_dir, [], [*PY, REPORT_SIGNALS], wait_until) as wrapper:
        wrapper.send_signal(number)
        stdout, stderr = wrapper.communicate(timeout=60)

    assert wrapper.returncode == 7, stderr
    assert stdout == f"ready\ngot {int(number)}\n".encode()
    record = state.read_json(str(state_dir), state.EXIT_FILE)
    assert record is not None
    assert record["exit_code"] == 7
    assert record["timed_out"] is False


def test_sigterm_to_the_wrapper_ends_a_stubborn_command_after_the_grace(
    wrapper_argv: list[str], state_dir: pathlib.Path, wait_until: Any
) -> None:
    options = ["--grace", "0.5"]
    with _start_wrapper(wrapper_argv, state_dir, options, [*PY, IGNORE_SIGTERM], wait_until) as w:
        w.send_signal(signal.SIGTERM)
        w.communicate(timeout=60)

    assert w.returncode == 128 + signal.SIGKILL
    record = state.read_json(str(state_dir), state.EXIT_FILE)
    assert record is not None
    assert record["signal"] == signal.SIGKILL
    assert record["timed_out"] is False


# The command starts a grandchild that inherits stdout/stderr, writes its pid, and exits.
LEAVE_GRANDCHILD = """
import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-I", "-S", "-c", {body!r}])
open({pid_file!r}, "w").write(str(grandchild.pid))
sys.exit(5)
"""
SLEEPER = "import time; time.sleep(600)"
CHATTERBOX = "import sys\nwhile True:\n    sys.stdout.write('more\\n'); sys.stdout.flush()"


@pytest.mark.parametrize("body", [SLEEPER, CHATTERBOX], ids=["sleeping", "writing"])
def test_grandchildren_left_behind_are_killed_and_do_not_hold_the_wrapper(
    run_wrapper: Any, tmp_path: pathlib.Path, process_gone: Any, wait_until: Any, body: str
) -> None:
    pid_file = tmp_path / "grandchild.pid"

    run = run_wrapper([*PY, LEAVE_GRANDCHILD.format(body=body, pid_file=str(pid_file))])

    assert run.returncode == 5
    assert run.exit["exit_code"] == 5
    grandchild = int(pid_file.read_text())
    wait_until(lambda: process_gone(grandchild), 30)


ESCAPE_GROUP = """
import os, subprocess, sys
escaped = subprocess.Popen(
    [sys.executable, "-I", "-S", "-c", "import time; time.sleep(600)"], start_new_session=True
)
open({pid_file!r}, "w").write(str(escaped.pid))
"""


def test_wrapper_ends_even_if_a_process_outside_the_group_holds_the_pipes(
    run_wrapper: Any, tmp_path: pathlib.Path
) -> None:
    pid_file = tmp_path / "escaped.pid"
    try:
        run = run_wrapper([*PY, ESCAPE_GROUP.format(pid_file=str(pid_file))], timeout=60)

        assert run.returncode == 0
        assert run.exit["exit_code"] == 0
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


# Runs as the command under a wrapper that is PID 1 of a new pid namespace: orphans a
# grandchild and waits for its zombie to be reaped (by the wrapper, its new parent).
ORPHAN_AND_WATCH = """
import os, sys, time
print("parent", os.getppid(), flush=True)
read_end, write_end = os.pipe()
middle = os.fork()
if middle == 0:
    orphan = os.fork()
    if orphan == 0:
        os._exit(0)
    os.write(write_end, str(orphan).encode())
    os._exit(0)
os.close(write_end)
orphan = int(os.read(read_end, 64))
os.waitpid(middle, 0)
deadline = time.monotonic() + 30
while os.path.exists("/proc/%d" % orphan):
    if time.monotonic() > deadline:
        print("not reaped", flush=True)
        sys.exit(1)
    time.sleep(0.01)
print("reaped", flush=True)
"""


def _can_unshare_pid() -> bool:
    if os.geteuid() != 0:
        return False
    probe = ["unshare", "--pid", "--fork", "--mount-proc", "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0
    except OSError:
        return False


@pytest.mark.skipif(not _can_unshare_pid(), reason="needs root and unshare(1) for a pid namespace")
def test_wrapper_as_pid_1_reaps_orphaned_zombies(
    wrapper_argv: list[str], state_dir: pathlib.Path
) -> None:
    argv = ["unshare", "--pid", "--fork", "--mount-proc", *wrapper_argv]
    argv += ["--state-dir", str(state_dir), "--", *PY, ORPHAN_AND_WATCH]

    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)

    assert done.stdout == b"parent 1\nreaped\n", done.stderr
    assert done.returncode == 0
