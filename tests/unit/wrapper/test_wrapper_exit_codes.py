"""How the command ended, as the wrapper's own exit code and as the EXIT record."""

import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import pytest

from wire import channel

PY = [sys.executable, "-I", "-S", "-c"]


def test_success_is_recorded_with_exit_code_zero(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, "print('hello')"])

    assert run.returncode == 0
    assert run.stdout == b"hello\n"
    assert run.output("stdout") == b"hello\n"
    record = run.exit
    assert record["exit_code"] == 0
    assert record["signal"] is None
    assert record["timed_out"] is False
    assert record["wrapper_error"] is None
    assert record["stdout_truncated"] is False
    assert record["stderr_truncated"] is False
    assert record["duration_seconds"] > 0
    assert record["finished_at"] >= run.started["started_at"]
    assert record["timeout_seconds"] is None


@pytest.mark.parametrize("code", [1, 3, 255])
def test_non_zero_exit_code_is_passed_through(run_wrapper: Any, code: int) -> None:
    run = run_wrapper([*PY, f"import sys; sys.exit({code})"])

    assert run.returncode == code
    assert run.exit["exit_code"] == code
    assert run.exit["signal"] is None
    assert run.exit["wrapper_error"] is None


@pytest.mark.parametrize("number", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1])
def test_death_by_signal_exits_128_plus_the_signal(run_wrapper: Any, number: int) -> None:
    run = run_wrapper([*PY, f"import os; os.kill(os.getpid(), {int(number)})"])

    assert run.returncode == 128 + number
    assert run.exit["exit_code"] == 128 + number
    assert run.exit["signal"] == number
    assert run.exit["timed_out"] is False


def test_missing_command_exits_127_with_the_reason(run_wrapper: Any) -> None:
    run = run_wrapper(["crucible-no-such-command", "arg"])

    assert run.returncode == channel.EXIT_NOT_FOUND
    assert run.exit["exit_code"] == channel.EXIT_NOT_FOUND
    assert "not found" in run.exit["wrapper_error"]
    assert "crucible-no-such-command" in run.exit["wrapper_error"]
    assert b"crucible-no-such-command" in run.stderr
    assert run.peer.kinds() == [channel.HELLO, channel.EXIT]  # never started


def test_a_huge_reason_is_cut_so_that_the_exit_record_still_fits(run_wrapper: Any) -> None:
    name = "\x01" * 100_000  # JSON writes each as 6 bytes (\u0001): 600 kB, over a frame

    run = run_wrapper([name])

    assert run.returncode == channel.EXIT_NOT_EXECUTABLE  # ENAMETOOLONG
    assert run.exit["exit_code"] == channel.EXIT_NOT_EXECUTABLE
    assert run.exit["wrapper_error"].startswith("cannot execute: [Errno 36] File name too long")


def _not_executable_file(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "plain.sh"
    path.write_text("#!/bin/sh\necho never\n")
    path.chmod(0o644)
    return str(path)


def _garbage_executable(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "garbage"
    path.write_bytes(b"\x00\x01\x02 not a program")
    path.chmod(0o755)
    return str(path)


def _script_with_missing_interpreter(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "orphan.sh"
    path.write_text("#!/nonexistent/interpreter\necho never\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(
    "make_command",
    [
        _not_executable_file,
        _garbage_executable,
        _script_with_missing_interpreter,
        lambda tmp_path: str(tmp_path),
    ],
    ids=["no-exec-bit", "exec-format-error", "missing-interpreter", "directory"],
)
def test_command_that_cannot_be_executed_exits_126(
    run_wrapper: Any, tmp_path: pathlib.Path, make_command: Any
) -> None:
    command = make_command(tmp_path)

    run = run_wrapper([command])

    assert run.returncode == channel.EXIT_NOT_EXECUTABLE
    assert run.exit["exit_code"] == channel.EXIT_NOT_EXECUTABLE
    assert "cannot execute" in run.exit["wrapper_error"]
    assert command in run.exit["wrapper_error"]
    assert b"never" not in run.stdout


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--"],
        ["true"],
        ["--timeout", "soon", "--", "true"],
        ["--timeout", "0", "--", "true"],
        ["--timeout", "inf", "--", "true"],
        ["--grace", "-1", "--", "true"],
        ["--output-cap", "1.5", "--", "true"],
        ["--connect-timeout", "-1", "--", "true"],
        ["--no-such-option", "--", "true"],
    ],
)
def test_bad_usage_exits_2_with_a_message_and_connects_to_nothing(
    wrapper_argv: list[str], make_peer: Any, argv: list[str]
) -> None:
    peer = make_peer()
    done = subprocess.run(
        [*wrapper_argv, "--channel", str(peer.path), *argv],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.startswith(b"usage: crucible-wrapper")
    assert b"crucible-wrapper: error:" in done.stderr
    assert peer.connections == 0


def test_help_describes_the_options(wrapper_argv: list[str]) -> None:
    done = subprocess.run([*wrapper_argv, "--help"], capture_output=True, timeout=60, check=False)

    assert done.returncode == 0
    for option in (b"--timeout", b"--grace", b"--channel", b"--connect-timeout", b"--output-cap"):
        assert option in done.stdout


def test_channel_defaults_to_the_environment(wrapper_argv: list[str], make_peer: Any) -> None:
    peer = make_peer()
    env = {**os.environ, channel.CHANNEL_ENV: str(peer.path)}

    done = subprocess.run([*wrapper_argv, "--", "true"], env=env, timeout=60, check=False)

    assert done.returncode == 0
    peer.join()
    assert peer.record(channel.EXIT)["exit_code"] == 0


def test_exit_record_carries_the_timeout(run_wrapper: Any) -> None:
    run = run_wrapper(["true"], "--timeout", "42.5")

    assert run.exit["timeout_seconds"] == 42.5
