"""The state directory as the sidecar sees it: what appears when, and nothing else."""

import os
import pathlib
import shutil
import stat
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from wrapper import state

PY = [sys.executable, "-I", "-S", "-c"]

# Waits (bounded) for started.json to appear while it runs, then prints what it saw.
WAIT_FOR_STARTED = """
import json, os, sys, time
path = os.path.join({state_dir!r}, "started.json")
deadline = time.monotonic() + 30
while not os.path.exists(path):
    if time.monotonic() > deadline:
        sys.exit("started.json never appeared")
    time.sleep(0.01)
record = json.load(open(path))
print(record["pid"] == os.getpid(), os.path.exists(os.path.join({state_dir!r}, "exit.json")))
"""


def test_started_record_is_written_while_the_command_runs(
    run_wrapper: Any, state_dir: pathlib.Path
) -> None:
    command = [*PY, WAIT_FOR_STARTED.format(state_dir=str(state_dir))]

    run = run_wrapper(command)

    assert run.returncode == 0, run.stderr
    assert run.stdout == b"True False\n"  # its own pid, and no exit record yet
    assert run.started["command"] == command
    assert run.started["started_at"] <= run.exit["finished_at"]


def test_only_the_contract_files_are_left(run_wrapper: Any, state_dir: pathlib.Path) -> None:
    run = run_wrapper([*PY, "import sys; print('x'); print('y', file=sys.stderr)"])

    assert run.returncode == 0
    assert sorted(os.listdir(state_dir)) == sorted(
        [state.STARTED_FILE, state.EXIT_FILE, state.STDOUT_FILE, state.STDERR_FILE]
    )
    for name in (state.STARTED_FILE, state.EXIT_FILE):
        assert stat.S_IMODE(os.stat(state_dir / name).st_mode) == 0o644  # readable by the sidecar


def test_exit_record_appears_only_once_the_output_files_are_complete(
    wrapper_argv: list[str], state_dir: pathlib.Path, wait_until: Any, process_gone: Any
) -> None:
    # Nobody reads the wrapper's stdout until the command has exited, so the wrapper is stuck
    # passing output through and the rest of it still sits in the command's pipe: exit.json
    # must wait until all of that is in the file.
    size = (1 << 20) + (48 << 10)  # fits into the two pipes, so the command can finish writing
    code = f"import sys; sys.stdout.buffer.write(b'x' * {size})"
    argv = [*wrapper_argv, "--state-dir", str(state_dir), "--", *PY, code]
    exit_file = state_dir / state.EXIT_FILE
    sizes_seen_with_exit = set()
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as wrapper:
        assert wrapper.stdout is not None
        wait_until(lambda: (state_dir / state.STARTED_FILE).exists(), 30)
        started = state.read_json(str(state_dir), state.STARTED_FILE)
        assert started is not None
        command_pid = started["pid"]
        wait_until(lambda: process_gone(command_pid), 30)
        while os.read(wrapper.stdout.fileno(), 16384):
            if exit_file.exists():
                sizes_seen_with_exit.add(os.path.getsize(state_dir / state.STDOUT_FILE))
        wrapper.wait(timeout=60)

    assert sizes_seen_with_exit <= {size}
    assert os.path.getsize(state_dir / state.STDOUT_FILE) == size
    assert exit_file.exists()


def test_stale_records_are_removed_and_output_files_started_afresh(
    run_wrapper: Any, state_dir: pathlib.Path
) -> None:
    state_dir.mkdir()
    state.write_json_atomic(str(state_dir), state.EXIT_FILE, state.exit_record(99))
    (state_dir / state.STDOUT_FILE).write_bytes(b"old output\n")
    exit_path = str(state_dir / state.EXIT_FILE)

    run = run_wrapper([*PY, f"import os; print(os.path.exists({exit_path!r}))"])

    assert run.output(state.STDOUT_FILE) == b"False\n"
    assert run.exit["exit_code"] == 0


def test_missing_state_dir_is_created(run_wrapper: Any, state_dir: pathlib.Path) -> None:
    nested = state_dir / "a" / "b"

    done = run_wrapper(["true"], "--state-dir", str(nested))

    assert done.returncode == 0
    assert state.read_json(str(nested), state.EXIT_FILE) is not None


NOBODY = 65534
# The test's own interpreter may live under /root, out of the unprivileged user's reach.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 in /usr/local/bin, /usr/bin")
def test_runs_as_an_unprivileged_user_writing_only_into_the_state_dir(
    wrapper_app: pathlib.Path,
) -> None:
    assert SYSTEM_PYTHON is not None
    # Everything but the state dir is read-only to that user (as under readOnlyRootFilesystem).
    base = pathlib.Path(tempfile.mkdtemp(prefix="crucible-wrapper-ro-"))
    try:
        base.chmod(0o755)
        app = base / "bin" / wrapper_app.name
        app.parent.mkdir()
        shutil.copy(wrapper_app, app)
        state_dir = base / "state"
        state_dir.mkdir()
        os.chown(state_dir, NOBODY, NOBODY)
        before = sorted(str(p) for p in base.rglob("*"))

        done = subprocess.run(
            [SYSTEM_PYTHON, "-I", "-S", str(app), "--state-dir", str(state_dir), "--", "id", "-u"],
            cwd=app.parent,
            env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            timeout=60,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{NOBODY}\n".encode()
        after = sorted(str(p) for p in base.rglob("*"))
        new = sorted(set(after) - set(before))
        expected = [state.EXIT_FILE, state.STARTED_FILE, state.STDERR_FILE, state.STDOUT_FILE]
        assert new == [str(state_dir / name) for name in expected]
    finally:
        shutil.rmtree(base)
