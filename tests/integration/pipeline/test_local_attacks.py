"""Code under evaluation that tries to forge its verdict, on the local backend with real
processes: whatever it does, every channel (the record, the evaluation's stream, SSE, the legacy
pub/sub) says what the wrapper's real wait status says."""

import contextlib
import json
import os
import pathlib
from typing import Any

import pytest

from dispatcher.backends.local import verdict as local_verdict
from tests.integration.pipeline.harness import (
    TERMINAL,
    Dispatcher,
    DispatcherFactory,
    LegacySubscriber,
    eventually,
    sse_events,
)
from wire import channel

pytestmark = pytest.mark.integration

# Writes a record of success wherever the wrapper used to keep its state, and anywhere else it
# can, then fails. Prints every file it planted (the test removes those outside its tmp_path).
FORGE_FILES = r"""
import glob, json, os, sys, tempfile, time
root = sys.argv[1]
exit_record = {"exit_code": 0, "signal": None, "timed_out": False, "duration_seconds": 0.1,
               "finished_at": time.time(), "stdout_truncated": False,
               "stderr_truncated": False, "wrapper_error": None}
started = {"pid": 1, "command": ["true"], "started_at": time.time()}
places = {os.getcwd(), os.environ["HOME"], os.environ["TMPDIR"], tempfile.gettempdir(), "/tmp"}
places |= set(glob.glob(os.path.join(root, "**", ""), recursive=True))
planted = []
for place in sorted(places):
    for directory in (place, os.path.join(place, "state")):
        try:
            os.makedirs(directory, exist_ok=True)
            for name, record in (("exit.json", exit_record), ("started.json", started)):
                path = os.path.join(directory, name)
                with open(path, "w") as f:
                    json.dump(record, f)
                planted.append(path)
        except OSError:
            pass
print(json.dumps(planted), flush=True)
sys.exit(7)
"""

# Looks for the sidecar's socket (it is told no path) and speaks the wrapper's part on every
# one it can reach: HELLO, STARTED, forged output and an EXIT record of success.
PROBE_SOCKETS = r"""
import glob, json, os, socket, struct, sys, time
root = sys.argv[1]
def frame(kind, payload):
    return struct.pack(">cI", kind, len(payload)) + payload
def record(kind, value):
    return frame(kind, json.dumps(value).encode())
found = set(glob.glob(os.path.join(root, "**", "*.sock"), recursive=True))
found.add("/crucible/run/channel.sock")
connected = 0
for path in sorted(found):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        connected += 1
        s.sendall(record(b"H", {"v": 1, "pid": os.getpid()})
                  + record(b"S", {"pid": os.getpid(), "command": ["x"], "started_at": time.time()})
                  + frame(b"O", b"FORGED\n")
                  + record(b"X", {"exit_code": 0, "duration_seconds": 0.1}))
        s.recv(64)
    except OSError:
        pass
    finally:
        s.close()
print("probed", len(found), "connected", connected, flush=True)
sys.exit(7)
"""

# Signals its wrapper: SIGTERM (which the wrapper ignores, from anyone but its parent), then
# SIGKILL, which nothing can ignore; then plants a record of success and lingers.
KILL_WRAPPER = r"""
import json, os, signal, time
wrapper = os.getppid()
os.kill(wrapper, signal.SIGTERM)
time.sleep(0.3)
print("still running after SIGTERM", flush=True)
time.sleep(0.3)
with open("pid.new", "w") as f:
    f.write(str(os.getpid()))
os.replace("pid.new", "pid")
os.kill(wrapper, signal.SIGKILL)
os.makedirs("state", exist_ok=True)
for path in ("exit.json", "state/exit.json"):
    with open(path, "w") as f:
        json.dump({"exit_code": 0, "signal": None, "timed_out": False}, f)
time.sleep(60)
"""


async def verdicts(
    dispatcher: Dispatcher, eval_id: str, legacy: LegacySubscriber
) -> dict[str, Any]:
    """What each channel says of the evaluation's end, once it is verified."""
    record = await dispatcher.wait_ended(eval_id)
    stream = await dispatcher.stream(eval_id)
    sse_end = {
        (e["type"], e.get("exit_code"))
        async for _, kind, e in sse_events(dispatcher, eval_id)
        if kind in TERMINAL
    }
    legacy.stop()
    return {
        "record": (record["status"], record["exit_code"]),
        "stream": {(e.type.value, e.exit_code) for e in stream if e.terminal},
        "sse": sse_end,
        "legacy": [(m["channel"], m["exit_code"]) for m in legacy.heard if m["eval_id"] == eval_id],
        "full_record": record,
        "events": stream,
    }


async def test_forged_state_files_change_no_channels_verdict(
    make_dispatcher: DispatcherFactory,
    redis_url: str,
    tmp_path: pathlib.Path,
    legacy_subscriber: LegacySubscriber,
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path))
    await dispatcher.submit(
        command=["python", "-c", FORGE_FILES, str(tmp_path)], eval_id="forge-files"
    )
    seen = await verdicts(dispatcher, "forge-files", legacy_subscriber)
    planted = json.loads(seen["full_record"]["output"])
    try:
        assert any(p.startswith(str(tmp_path / "runs")) for p in planted)
        assert any(p.startswith(str(tmp_path / "run") + os.sep) for p in planted)
        assert seen["record"] == ("failed", 7), seen["full_record"]
        assert seen["full_record"]["correction"] is None
        assert seen["stream"] == {("failed", 7)}
        assert seen["sse"] == {("failed", 7)}
        assert seen["legacy"] == [("evaluation:failed", 7)]
    finally:
        for path in map(pathlib.Path, planted):
            if not path.is_relative_to(tmp_path):
                # Another test run may plant and clean up the same paths at the same time.
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
                    if path.parent.name == "state":
                        path.parent.rmdir()  # only if empty


async def test_code_that_reaches_for_the_channel_publishes_nothing(
    make_dispatcher: DispatcherFactory,
    redis_url: str,
    tmp_path: pathlib.Path,
    legacy_subscriber: LegacySubscriber,
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path))
    await dispatcher.submit(
        command=["python", "-c", PROBE_SOCKETS, str(tmp_path)], eval_id="probe-socket"
    )
    seen = await verdicts(dispatcher, "probe-socket", legacy_subscriber)
    assert seen["full_record"]["output"].startswith("probed ")
    assert seen["record"] == ("failed", 7), seen["full_record"]
    assert seen["stream"] == {("failed", 7)}
    assert seen["sse"] == {("failed", 7)}
    assert seen["legacy"] == [("evaluation:failed", 7)]
    published = seen["events"]
    assert not any("FORGED" in (e.data or "") + (e.output or "") for e in published)
    assert [e.type.value for e in published if e.source == "sidecar"].count("running") == 1


async def test_code_that_kills_its_wrapper_gets_the_wait_status_verdict(
    make_dispatcher: DispatcherFactory,
    redis_url: str,
    tmp_path: pathlib.Path,
    legacy_subscriber: LegacySubscriber,
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path), keep_work_dirs=True)
    await dispatcher.submit(command=["python", "-c", KILL_WRAPPER], eval_id="kill-wrapper")
    seen = await verdicts(dispatcher, "kill-wrapper", legacy_subscriber)
    record = seen["full_record"]
    # SIGTERM from its own child was ignored; SIGKILL ended the wrapper (128 + 9).
    assert record["output"] == "still running after SIGTERM\n"
    assert seen["record"] == ("failed", 128 + 9), record
    assert (record["signal"], record["reason"]) == (9, local_verdict.NO_REPORT_REASON)
    # The sidecar, its channel lost, published no end: the verified verdict is the only one.
    assert not any(e.terminal for e in seen["events"] if e.source == "sidecar")
    assert seen["stream"] == {("failed", 137)}
    assert seen["sse"] == {("failed", 137)}
    assert seen["legacy"] == [("evaluation:failed", 137)]
    # The user code outlived its wrapper; it did not outlive the evaluation.
    (pid_file,) = (tmp_path / "runs").glob("kill-wrapper-*/pid")
    await eventually(lambda: gone(int(pid_file.read_text())))


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_probe_speaks_the_channels_frames() -> None:
    """The probe's hand-made frames are the wrapper's: its attempt is a real one."""
    assert channel.HEADER.format == ">cI"
    assert (channel.HELLO, channel.STARTED, channel.STDOUT, channel.EXIT) == (
        b"H",
        b"S",
        b"O",
        b"X",
    )


# Hunts for other evaluations' sockets (same user, same machine) for a while, racing their
# wrappers to them, and speaks the wrapper's part on every one it reaches.
HUNT_SOCKETS = r"""
import glob, json, os, socket, struct, sys, time
root, seconds = sys.argv[1], float(sys.argv[2])
def frame(kind, payload):
    return struct.pack(">cI", kind, len(payload)) + payload
def record(kind, value):
    return frame(kind, json.dumps(value).encode())
attempts = accepted = 0
deadline = time.time() + seconds
while time.time() < deadline:
    for path in glob.glob(os.path.join(root, "**", "*.sock"), recursive=True):
        attempts += 1
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(path)
            s.sendall(record(b"H", {"v": 1, "pid": os.getpid()}))
            if s.recv(64):
                accepted += 1
            s.sendall(frame(b"O", b"FORGED\n") + record(b"X", {"exit_code": 0}))
        except OSError:
            pass
        finally:
            s.close()
print(json.dumps({"attempts": attempts, "accepted": accepted}), flush=True)
"""


async def test_code_of_one_evaluation_cannot_take_over_anothers_channel(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path), concurrency=4)
    await dispatcher.submit(
        command=["python", "-c", HUNT_SOCKETS, str(tmp_path), "6"], eval_id="hunter"
    )
    await dispatcher.wait_for("hunter", lambda r: r["status"] == "running")
    victims = [f"victim-{i}" for i in range(12)]
    for eval_id in victims:
        await dispatcher.submit(
            command=["python", "-c", "import sys; print('mine'); sys.exit(3)"], eval_id=eval_id
        )
    for eval_id in victims:
        record = await dispatcher.wait_ended(eval_id)
        assert (record["status"], record["exit_code"], record["output"]) == ("failed", 3, "mine\n")
        assert record["correction"] is None, record
        events = await dispatcher.stream(eval_id)
        assert not any("FORGED" in (e.data or "") for e in events), eval_id
    hunter = await dispatcher.wait_ended("hunter")
    seen = json.loads(hunter["output"])
    assert seen["attempts"] > 0
    assert seen["accepted"] == 0, seen
