"""How the command ended, as the wrapper's own exit code and as ``exit.json``."""

import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import pytest

from wrapper import state

PY = [sys.executable, "-I", "-S", "-c"]


def test_success_is_recorded_with_exit_code_zero(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, "print('hello')"])

    assert run.returncode == 0
    assert run.stdout == b"hello\n"
    assert run.output(state.STDOUT_FILE) == b"hello\n"
    record = run.exit
    assert record["exit_code"] == 0
    assert record["signal"] is None
    assert record["timed_out"] is False
    assert record["wrapper_error"] is None
    assert record["stdout_truncated"] is False
    assert record["stderr_truncated"] is False
    assert record["duration_seconds"] > 0
    assert record["finished_at"] >= run.started["started_at"]


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

    assert run.returncode == state.EXIT_NOT_FOUND
    assert run.exit["exit_code"] == state.EXIT_NOT_FOUND
    assert "not found" in run.exit["wrapper_error"]
    assert "crucible-no-such-command" in run.exit["wrapper_error"]
    assert b"crucible-no-such-command" in run.stderr
    assert not (run.state_dir / state.STARTED_FILE).exists()


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

    assert run.returncode == state.EXIT_NOT_EXECUTABLE
    assert run.exit["exit_code"] == state.EXIT_NOT_EXECUTABLE
    assert "cannot execute" in run.exit["wrapper_error"]
    assert command in run.exit["wrapper_error"]
    assert b"never" not in run.stdout


def test_unusable_state_dir_fails_before_running_and_says_why(
    run_wrapper: Any, state_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    (state_dir / state.STDOUT_FILE).mkdir(parents=True)  # the output file cannot be created
    marker = tmp_path / "ran"

    run = run_wrapper([*PY, f"open({str(marker)!r}, 'w').close()"])

    assert run.returncode == state.EXIT_WRAPPER_FAILED
    assert run.exit["exit_code"] == state.EXIT_WRAPPER_FAILED
    assert run.exit["wrapper_error"].startswith("wrapper failed: IsADirectoryError")
    assert not marker.exists()


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
        ["--no-such-option", "--", "true"],
    ],
)
def test_bad_usage_exits_2_with_a_message_and_writes_nothing(
    wrapper_argv: list[str], state_dir: pathlib.Path, argv: list[str]
) -> None:
    done = subprocess.run(
        [*wrapper_argv, "--state-dir", str(state_dir), *argv],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr.startswith(b"usage: crucible-wrapper")
    assert b"crucible-wrapper: error:" in done.stderr
    assert not state_dir.exists()


def test_help_describes_the_options(wrapper_argv: list[str]) -> None:
    done = subprocess.run([*wrapper_argv, "--help"], capture_output=True, timeout=60, check=False)

    assert done.returncode == 0
    for option in (b"--timeout", b"--grace", b"--state-dir", b"--output-cap"):
        assert option in done.stdout


def test_state_dir_defaults_to_the_environment(
    wrapper_argv: list[str], state_dir: pathlib.Path
) -> None:
    env = {**os.environ, state.STATE_DIR_ENV: str(state_dir)}

    done = subprocess.run([*wrapper_argv, "--", "true"], env=env, timeout=60, check=False)

    assert done.returncode == 0
    assert state.read_json(str(state_dir), state.EXIT_FILE) is not None
