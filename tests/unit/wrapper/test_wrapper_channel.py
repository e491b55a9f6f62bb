"""The channel to the sidecar: held before user code starts, the only place a result goes, and out
of user code's reach (no inherited fd, a non-dumpable wrapper, no files written)."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from wire import channel
from wrapper import runner

PY = [sys.executable, "-I", "-S", "-c"]

OUT_AND_ERR = """
import sys
for i in range(50):
    print("out", i, flush=True)
    print("err", i, file=sys.stderr, flush=True)
sys.exit(3)
"""


def test_frames_come_in_contract_order_and_the_wrapper_closes_after_exit(
    start_wrapper: Any, make_peer: Any
) -> None:
    peer = make_peer()
    command = [*PY, OUT_AND_ERR]

    with start_wrapper(peer, command) as wrapper:
        wrapper.communicate(timeout=60)

    assert wrapper.returncode == 3
    peer.join()
    kinds = peer.kinds()
    assert kinds[:2] == [channel.HELLO, channel.STARTED]
    assert kinds[-1] == channel.EXIT
    assert set(kinds[2:-1]) == {channel.STDOUT, channel.STDERR}
    assert peer.closed_by_wrapper
    assert peer.record(channel.HELLO) == {"v": channel.VERSION, "pid": wrapper.pid}
    started = peer.record(channel.STARTED)
    assert started["command"] == command
    assert started["pid"] != wrapper.pid
    assert peer.record(channel.EXIT)["exit_code"] == 3
    assert peer.output("stdout") == "".join(f"out {i}\n" for i in range(50)).encode()
    assert peer.output("stderr") == "".join(f"err {i}\n" for i in range(50)).encode()


# Runs until the test, having seen STARTED (and no EXIT), creates the go file.
WAIT_FOR_GO = """
import os, sys, time
deadline = time.monotonic() + 30
while not os.path.exists({go!r}):
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.01)
"""


def test_started_arrives_while_the_command_runs(
    start_wrapper: Any, make_peer: Any, tmp_path: pathlib.Path, wait_until: Any
) -> None:
    peer = make_peer()
    go = tmp_path / "go"

    with start_wrapper(peer, [*PY, WAIT_FOR_GO.format(go=str(go))]) as wrapper:
        wait_until(lambda: channel.STARTED in peer.kinds(), 30)
        assert channel.EXIT not in peer.kinds()
        go.touch()
        wrapper.communicate(timeout=60)

    assert wrapper.returncode == 0
    peer.join()
    assert peer.kinds() == [channel.HELLO, channel.STARTED, channel.EXIT]


def test_a_sidecar_that_comes_up_late_is_waited_for(run_wrapper: Any, make_peer: Any) -> None:
    run = run_wrapper(["true"], "--connect-timeout", "30", peer=make_peer(listen_after=0.5))

    assert run.returncode == 0, run.stderr
    assert run.exit["exit_code"] == 0


def _touch(path: pathlib.Path) -> list[str]:
    return [*PY, f"open({str(path)!r}, 'w').close()"]


def test_no_socket_within_the_connect_timeout_exits_125_without_running(
    wrapper_argv: list[str], tmp_path: pathlib.Path
) -> None:
    ran = tmp_path / "ran"
    missing = tmp_path / "no-such-dir" / "channel.sock"
    argv = [*wrapper_argv, "--channel", str(missing), "--connect-timeout", "0.3"]

    started = time.monotonic()
    done = subprocess.run([*argv, "--", *_touch(ran)], capture_output=True, timeout=60)

    assert done.returncode == channel.EXIT_WRAPPER_FAILED
    assert time.monotonic() - started >= 0.3
    assert not ran.exists()
    assert done.stderr.startswith(b"crucible-wrapper: no channel to the sidecar at ")
    assert b"the command was not run" in done.stderr


@pytest.mark.parametrize(
    "options",
    [{"ack": False}, {"ack": False, "close_after": channel.HELLO}],
    ids=["silent", "hangs-up"],
)
def test_no_ack_within_the_connect_timeout_exits_125_without_running(
    run_wrapper: Any, make_peer: Any, tmp_path: pathlib.Path, options: dict[str, Any]
) -> None:
    ran = tmp_path / "ran"
    peer = make_peer(**options)

    run = run_wrapper(_touch(ran), "--connect-timeout", "0.5", peer=peer)

    assert run.returncode == channel.EXIT_WRAPPER_FAILED
    assert not ran.exists()
    assert b"crucible-wrapper: no ACK from the sidecar at " in run.stderr
    assert peer.kinds() == [channel.HELLO]


SLOW_TALKER = """
import sys, time
time.sleep(0.3)
for _ in range(64):
    sys.stdout.write("x" * 32767 + "\\n")
sys.exit(3)
"""


def test_a_peer_that_hangs_up_mid_run_loses_only_the_channel(
    run_wrapper: Any, make_peer: Any
) -> None:
    peer = make_peer(close_after=channel.STARTED)

    run = run_wrapper([*PY, SLOW_TALKER], peer=peer)

    assert run.returncode == 3
    assert run.stdout == (b"x" * 32767 + b"\n") * 64  # still passed through whole
    assert run.stderr.count(b"crucible-wrapper: channel to the sidecar lost") == 1
    assert peer.kinds() == [channel.HELLO, channel.STARTED]


LIST_FDS = """
import os
for fd in sorted(os.listdir("/proc/self/fd"), key=int):
    try:
        print(fd, os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass
"""


def test_the_command_does_not_inherit_the_channel(run_wrapper: Any) -> None:
    run = run_wrapper([*PY, LIST_FDS])

    assert run.returncode == 0, run.stderr
    assert b"socket:" not in run.stdout
    assert run.stdout.startswith(b"0 /dev/null\n1 pipe:")


def test_a_command_line_too_long_for_one_frame_is_cut_in_started(run_wrapper: Any) -> None:
    command = ["sh", "-c", "exit 0", "sh", "a" * 100_000, "b" * 100_000]

    run = run_wrapper(command)

    assert run.returncode == 0
    assert run.started["command"] == [*command[:5], runner.COMMAND_CUT]


NOBODY = 65534
# The test's own interpreter may live under /root, out of the unprivileged user's reach.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
as_nobody = pytest.mark.skipif(
    os.geteuid() != 0 or SYSTEM_PYTHON is None,
    reason="needs root (to switch to an unprivileged user) and a system python3",
)


@pytest.fixture
def readonly_base(wrapper_app: pathlib.Path) -> Iterator[pathlib.Path]:
    """A root-owned directory holding the wrapper, read-only to the unprivileged user (as under
    readOnlyRootFilesystem)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="crucible-wrapper-ro-"))
    base.chmod(0o755)
    (base / "bin").mkdir()
    shutil.copy(wrapper_app, base / "bin" / wrapper_app.name)
    yield base
    shutil.rmtree(base)


def _run_as_nobody(
    base: pathlib.Path, peer: Any, command: list[str]
) -> subprocess.CompletedProcess[bytes]:
    assert SYSTEM_PYTHON is not None
    app = next((base / "bin").iterdir())
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", str(app), "--channel", str(peer.path), "--", *command],
        cwd=app.parent,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"},
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    peer.join()
    return done


@as_nobody
def test_runs_as_an_unprivileged_user_and_writes_no_files(
    readonly_base: pathlib.Path, make_peer: Any
) -> None:
    peer = make_peer()
    before = sorted(readonly_base.rglob("*"))

    done = _run_as_nobody(readonly_base, peer, ["id", "-u"])

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{NOBODY}\n".encode()
    assert sorted(readonly_base.rglob("*")) == before
    assert peer.output("stdout") == f"{NOBODY}\n".encode()
    assert peer.record(channel.EXIT)["exit_code"] == 0


# The command (same user as the wrapper) tries the wrapper's /proc files; its own as a control.
PROBE_PARENT = """
import os
ppid = os.getppid()
paths = ["/proc/self/environ"] + [f"/proc/{ppid}/{name}" for name in ("environ", "fd", "mem")]
for path in paths:
    try:
        if path.endswith("/fd"):
            os.listdir(path)
        else:
            open(path, "rb").close()
        print(path.replace(str(ppid), "WRAPPER"), "opened")
    except PermissionError:
        print(path.replace(str(ppid), "WRAPPER"), "denied")
"""


@as_nobody
def test_the_command_cannot_open_the_wrappers_proc_files(
    readonly_base: pathlib.Path, make_peer: Any
) -> None:
    assert SYSTEM_PYTHON is not None

    done = _run_as_nobody(
        readonly_base, make_peer(), [SYSTEM_PYTHON, "-I", "-S", "-c", PROBE_PARENT]
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "/proc/self/environ opened",
        "/proc/WRAPPER/environ denied",
        "/proc/WRAPPER/fd denied",
        "/proc/WRAPPER/mem denied",
    ]
