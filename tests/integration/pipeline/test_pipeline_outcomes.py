"""Every way an evaluation can end, through the HTTP API, with real processes."""

import contextlib
import os
import pathlib
import signal
import sys

import pytest

from dispatcher.backends.local import verdict as local_verdict
from tests.integration.pipeline.harness import Dispatcher, DispatcherFactory

pytestmark = pytest.mark.integration


async def test_success_with_output(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        code="import sys\nprint('hello')\nprint('oops', file=sys.stderr)"
    )
    assert created["status"] in ("accepted", "scheduled")
    assert created["job_name"] == f"local-{created['eval_id']}"

    record = await dispatcher.wait_ended(created["eval_id"])
    assert record["status"] == "completed", record
    assert (record["exit_code"], record["reason"], record["correction"]) == (0, None, None)
    assert (record["output"], record["error"]) == ("hello\n", "oops\n")
    assert record["started_at"] is not None
    assert record["duration_seconds"] is not None

    full = await dispatcher.http.get(f"/v1/evaluations/{created['eval_id']}/output")
    assert await full.json() == {"stdout": "hello\n", "stderr": "oops\n", "truncated": False}


async def test_non_zero_exit(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        command=["python", "-c", "import sys; print('bye', file=sys.stderr); sys.exit(3)"]
    )
    record = await dispatcher.wait_ended(created["eval_id"])
    assert (record["status"], record["exit_code"], record["error"]) == ("failed", 3, "bye\n")


async def test_timeout(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        code="import time\nprint('started', flush=True)\ntime.sleep(60)", timeout_seconds=1
    )
    record = await dispatcher.wait_ended(created["eval_id"])
    assert record["status"] == "timeout"
    # SIGTERM at the timeout: 128 + 15, and the output up to then is kept.
    assert (record["exit_code"], record["signal"]) == (143, 15)
    assert record["output"] == "started\n"
    assert record["reason"].startswith("timeout after")


async def test_cancel_a_running_evaluation(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        command=["sh", "-c", "echo up; sleep 60 & sleep 60"], timeout_seconds=120
    )
    eval_id = created["eval_id"]
    await dispatcher.wait_for(eval_id, lambda r: r["status"] == "running")

    response = await dispatcher.http.post(f"/v1/evaluations/{eval_id}/cancel")
    assert response.status == 202
    assert (await response.json())["status"] == "cancelled"

    record = await dispatcher.wait_ended(eval_id)
    assert (record["status"], record["reason"]) == ("cancelled", "cancelled by request")
    # The backend confirms it with the process's real end: SIGTERM forwarded to the group.
    assert record["signal"] == 15


async def test_missing_command(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(command=["no-such-command-for-crucible"])
    record = await dispatcher.wait_ended(created["eval_id"])
    assert (record["status"], record["exit_code"]) == ("error", 127)
    assert "not found" in record["reason"]


async def test_memory_limit_hit(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        code="x = bytearray(1024 * 1024 * 1024)\nprint('allocated')",
        resources={"memory": "128Mi", "cpu": "1"},
    )
    record = await dispatcher.wait_ended(created["eval_id"])
    assert (record["status"], record["reason"]) == ("failed", "MemoryLimit"), record
    assert record["exit_code"] == 1
    assert "MemoryError" in record["error"]
    assert record["output"] == ""


async def test_the_evaluation_sees_only_its_own_environment(dispatcher: Dispatcher) -> None:
    created = await dispatcher.submit(
        code="import os, shutil\nprint(sorted(os.environ))\nprint(shutil.which('python'))",
        env={"GREETING": "hi"},
    )
    record = await dispatcher.wait_ended(created["eval_id"])
    names, python = record["output"].splitlines()
    assert eval(names) == ["GREETING", "HOME", "LANG", "PATH", "PYTHONUNBUFFERED", "TMPDIR"]
    assert python.endswith("/bin/python")
    assert python != sys.executable  # a link on the evaluation's own PATH


async def test_a_sidecar_that_never_gets_ready_ends_the_evaluation_as_error(
    make_dispatcher: DispatcherFactory, redis_url: str
) -> None:
    dispatcher = await make_dispatcher(redis_url, sidecar_ready_timeout_seconds=0.001)
    created = await dispatcher.submit(code="print('never runs')")
    record = await dispatcher.wait_ended(created["eval_id"])
    assert (record["status"], record["started_at"]) == ("error", None)
    assert record["reason"].startswith("SidecarNotReady")


async def test_without_its_sidecar_an_evaluation_still_ends_right(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    """The sidecar dies mid-run: the wrapper goes on without its channel, and the backend's
    verdict, from the real exit status, ends the evaluation (the output after the sidecar's
    death reached nobody)."""
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path))
    code = "import os, time\nwhile not os.path.exists('go'):\n    time.sleep(0.01)\nprint('done')"
    created = await dispatcher.submit(code=code, eval_id="no-sidecar")
    await dispatcher.wait_for("no-sidecar", lambda r: r["status"] == "running")

    os.kill(sidecar_pid("no-sidecar"), signal.SIGKILL)
    (work_dir,) = (tmp_path / "runs").glob("no-sidecar-*")
    (work_dir / "go").touch()

    record = await dispatcher.wait_ended(created["eval_id"])
    assert (record["status"], record["exit_code"]) == ("completed", 0), record
    assert record["reason"] == local_verdict.NO_REPORT_REASON


def sidecar_pid(eval_id: str) -> int:
    marker = f"CRUCIBLE_SIDECAR_EVAL_ID={eval_id}\0".encode()
    for environ in pathlib.Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if marker in environ.read_bytes():
                return int(environ.parent.name)
    raise AssertionError(f"no sidecar process for {eval_id}")
