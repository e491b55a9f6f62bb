"""Timeouts, forwarded (and refused) signals, and processes the command leaves behind."""

import os
import pathlib
import platform
import signal
import sys
import time
from typing import Any

import pytest

from tests.unit.wrapper.harness import UNSHARE_PID, needs_pid_namespace
from wire import channel

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


def _start_ready(start_wrapper: Any, peer: Any, command: list[str], *options: str) -> Any:
    wrapper = start_wrapper(peer, command, *options)
    wait_for(lambda: b"ready" in peer.output("stdout"))
    return wrapper


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.01)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_from_the_parent_is_forwarded_to_the_command(
    start_wrapper: Any, make_peer: Any, number: int
) -> None:
    peer = make_peer()
    with _start_ready(start_wrapper, peer, [*PY, REPORT_SIGNALS]) as wrapper:
        wrapper.send_signal(number)  # the test is the wrapper's parent
        stdout, stderr = wrapper.communicate(timeout=60)

    assert wrapper.returncode == 7, stderr
    assert stdout == f"ready\ngot {int(number)}\n".encode()
    peer.join()
    assert peer.record(channel.EXIT)["exit_code"] == 7
    assert peer.record(channel.EXIT)["timed_out"] is False


def test_sigterm_to_the_wrapper_ends_a_stubborn_command_after_the_grace(
    start_wrapper: Any, make_peer: Any
) -> None:
    peer = make_peer()
    with _start_ready(start_wrapper, peer, [*PY, IGNORE_SIGTERM], "--grace", "0.5") as wrapper:
        wrapper.send_signal(signal.SIGTERM)
        wrapper.communicate(timeout=60)

    assert wrapper.returncode == 128 + signal.SIGKILL
    peer.join()
    record = peer.record(channel.EXIT)
    assert record["signal"] == signal.SIGKILL
    assert record["timed_out"] is False


# The command signals its parent, the wrapper, then proves it still runs and ends its own way.
SIGNAL_THE_WRAPPER = """
import os, signal, sys, time
for number in ({numbers}):
    os.kill(os.getppid(), number)
time.sleep(0.5)
print("still here", flush=True)
sys.exit(3)
"""


@pytest.mark.parametrize(
    "numbers",
    [[signal.SIGTERM], [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1]],
    ids=["sigterm", "others"],
)
def test_signals_from_the_command_to_the_wrapper_are_ignored(
    run_wrapper: Any, numbers: list[int]
) -> None:
    code = SIGNAL_THE_WRAPPER.format(numbers=", ".join(str(int(n)) for n in numbers) + ",")

    run = run_wrapper([*PY, code], "--grace", "0")

    assert run.returncode == 3, run.stderr
    assert run.stdout == b"still here\n"
    assert run.exit["exit_code"] == 3
    assert run.exit["signal"] is None
    assert run.stderr.count(b"crucible-wrapper: ignoring SIG") == 1  # said once


# rt_sigqueueinfo lets a sender write si_pid itself (with si_code SI_QUEUE): a forged "from
# outside the namespace" (pid 0) SIGTERM. siginfo_t: signo, errno, code, then (64-bit) pid and
# uid at offset 16.
FORGED_SIGTERM = """
import ctypes, os, signal, struct, sys, time
info = bytearray(128)
struct.pack_into("iii", info, 0, signal.SIGTERM, 0, -1)
struct.pack_into("ii", info, 16, 0, 0)
libc = ctypes.CDLL(None, use_errno=True)
buffer = (ctypes.c_char * 128).from_buffer(info)
if libc.syscall({number}, os.getppid(), signal.SIGTERM, buffer) != 0:
    sys.exit("rt_sigqueueinfo failed: errno %d" % ctypes.get_errno())
time.sleep(0.5)
print("still here", flush=True)
sys.exit(4)
"""
RT_SIGQUEUEINFO = {"x86_64": 129, "aarch64": 138}


@pytest.mark.skipif(
    platform.machine() not in RT_SIGQUEUEINFO or sys.maxsize < 2**32,
    reason="rt_sigqueueinfo number and siginfo layout known for 64-bit x86_64/aarch64 only",
)
def test_a_signal_with_a_forged_sender_is_ignored(run_wrapper: Any) -> None:
    code = FORGED_SIGTERM.format(number=RT_SIGQUEUEINFO[platform.machine()])

    run = run_wrapper([*PY, code], "--grace", "0")

    assert run.returncode == 4, run.stderr
    assert run.stdout == b"still here\n"
    assert b"ignoring SIGTERM from pid 0" in run.stderr


def test_the_command_starts_with_no_blocked_or_ignored_signals(run_wrapper: Any) -> None:
    run = run_wrapper(["grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"])

    assert run.returncode == 0, run.stderr
    masks = dict(line.split(b":\t") for line in run.stdout.splitlines())
    # Signals 32 and 33 are glibc's own (no program can catch or reset them through libc); a
    # parent may leave them ignored, and the wrapper cannot change that, nor need it.
    glibc_internal = (1 << 31) | (1 << 32)
    assert int(masks[b"SigBlk"], 16) == 0
    assert int(masks[b"SigIgn"], 16) & ~glibc_internal == 0


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


@needs_pid_namespace
def test_wrapper_as_pid_1_reaps_orphaned_zombies(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, ORPHAN_AND_WATCH], prefix=UNSHARE_PID)

    assert run.stdout == b"parent 1\nreaped\n", run.stderr
    assert run.returncode == 0
    assert run.peer.record(channel.HELLO)["pid"] == 1


@needs_pid_namespace
def test_wrapper_as_pid_1_cannot_be_killed_or_terminated_by_the_command(
    run_wrapper: Any,
) -> None:
    script = "kill -KILL 1; kill -TERM 1; kill -INT 1; sleep 0.5; echo still here; exit 4"

    run = run_wrapper(["sh", "-c", script], "--grace", "0", prefix=UNSHARE_PID)

    assert run.returncode == 4, run.stderr
    assert run.stdout == b"still here\n"
    assert run.exit["exit_code"] == 4
    assert run.exit["signal"] is None
    assert b"crucible-wrapper: ignoring SIG" in run.stderr  # the lowest pending first: SIGINT
