"""The local backend's parts that touch the system: its directories, what it reads after a run
(the spool, the sidecar's report in a real Redis), and how it ends a run's processes."""

import os
import pathlib
import stat
import subprocess
import sys
import time

import pytest
import redis.asyncio

from dispatcher.backends.local import capture as local_capture
from dispatcher.backends.local import dirs as local_dirs
from dispatcher.backends.local import process as local_process
from dispatcher.store import publish
from wire import channel, events

pytestmark = pytest.mark.integration


def test_a_runs_private_dir_is_outside_its_work_dir_and_closed_to_others(
    tmp_path: pathlib.Path,
) -> None:
    layout = local_dirs.Layout.prepare(tmp_path)
    dirs = layout.make_run("some/eval id")
    assert dirs.work.parent == tmp_path / "runs"
    assert dirs.work.name.startswith("some_eval_id-")
    assert dirs.tmp.is_dir()
    assert not dirs.private.is_relative_to(dirs.work)
    for private in (tmp_path / "run", dirs.private, dirs.spool):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert dirs.socket == dirs.private / channel.SOCKET_NAME
    dirs.remove()
    assert not dirs.work.exists()
    assert not dirs.private.exists()


def test_a_work_root_too_deep_for_a_socket_path_gets_private_dirs_elsewhere(
    tmp_path: pathlib.Path,
) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    layout = local_dirs.Layout.prepare(deep)
    dirs = layout.make_run("deep")
    assert len(os.fsencode(dirs.socket)) <= 107
    assert dirs.work.parent == deep / "runs"
    layout.close()
    assert not layout.private_root.exists()


def test_spool_tails_are_read_from_regular_files_only(tmp_path: pathlib.Path) -> None:
    (tmp_path / "stdout").write_bytes("caf\u00e9\n".encode() + channel.TRUNCATION_MARKER)
    assert local_capture.read_tail(tmp_path / "stdout") == (
        "caf\u00e9\n" + channel.TRUNCATION_MARKER.decode(),
        True,
    )
    (tmp_path / "planted").write_text("forged")
    (tmp_path / "link").symlink_to(tmp_path / "planted")
    os.mkfifo(tmp_path / "fifo")  # would block an open without O_NONBLOCK
    for name in ("link", "fifo", "missing"):
        assert local_capture.read_tail(tmp_path / name) == ("", False)


def test_a_tail_cut_inside_a_character_keeps_only_whole_ones(tmp_path: pathlib.Path) -> None:
    limit = events.TAIL_LIMIT_CHARS
    # 4-byte characters, the read of the last 4 * limit bytes starting 1 byte into one.
    (tmp_path / "stderr").write_bytes(("\U0001f600" * limit + "a").encode())
    text, truncated = local_capture.read_tail(tmp_path / "stderr")
    assert (text, truncated) == ("\U0001f600" * (limit - 1) + "a", False)


async def test_the_report_is_the_sidecars_terminal_event(redis_client: redis.asyncio.Redis) -> None:
    publisher = publish.Publisher(redis_client)
    assert await local_capture.sidecar_report(redis_client, "r") is None

    def event(kind: str, source: events.Source, **fields: object) -> events.Event:
        return events.Event(eval_id="r", type=events.EventType(kind), source=source, **fields)

    await publisher.publish(event("running", "sidecar"))
    await publisher.publish(event("output", "sidecar", stream="stdout", offset=0, data="x"))
    assert await local_capture.sidecar_report(redis_client, "r") is None
    await publisher.publish(event("failed", "sidecar", exit_code=3))
    await publisher.publish(event("cancelled", "dispatcher", reason="late"))
    found = await local_capture.sidecar_report(redis_client, "r")
    assert found is not None
    assert (found.type, found.exit_code, found.source) == ("failed", 3, "sidecar")


def test_killing_a_session_ends_every_group_in_it() -> None:
    # A session leader that starts a child in a group of its own, as the wrapper does.
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '60'], process_group=0)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    assert os.getpgid(child) != leader.pid
    assert os.getsid(child) == leader.pid

    assert local_process.kill_session(leader.pid) >= 2
    leader.wait(10)
    leader.stdout.close()
    deadline = time.monotonic() + 10
    while not gone(child):
        assert time.monotonic() < deadline, "the child outlived its session's kill"
        time.sleep(0.01)


def test_our_own_session_is_never_killed() -> None:
    assert local_process.kill_session(os.getsid(0)) == 0
    assert local_process.kill_session(1) == 0


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True
