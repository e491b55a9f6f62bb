"""Attacks on the verdict, on real pods: user code that lies about how it ended.

Every channel must carry the kubelet's exit code: the record, the evaluation's stream (and so
SSE), the legacy `evaluation:*` messages and the CLI's exit status (docs/security.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e import attacks, kube
from tests.e2e.api import TERMINAL
from tests.e2e.conftest import Release

NO_REPORT = "no exit report from the wrapper"
CLI = Path(sys.executable).with_name("crucible")  # the console script, as a user runs it


def terminal_events(release: Release, eval_id: str) -> list[dict[str, Any]]:
    events = attacks.stream_events(release, f"crucible:events:{eval_id}")
    return [e for e in events if e["type"] in TERMINAL]


def cli_submit(release: Release, code: str) -> tuple[int, str, str]:
    """`crucible submit --watch -` as a user runs it: (exit status, eval_id, stderr)."""
    env = {
        **os.environ,
        "CRUCIBLE_URL": release.api.base_url,
        "CRUCIBLE_TOKEN": release.api.session.headers["Authorization"].split()[1],
    }
    done = subprocess.run(
        [str(CLI), "submit", "--watch", "-"],
        input=code, capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    match = re.search(r"submitted (\S+)", done.stderr)
    assert match, done.stderr
    return done.returncode, match.group(1).rstrip("…"), done.stderr


def test_a_forged_exit_file_changes_no_channel(release: Release) -> None:
    with attacks.legacy_listener(release) as heard:
        status, eval_id, stderr = cli_submit(release, attacks.FORGE_EXIT_FILES)
        attacks.wait_heard(heard, eval_id, "evaluation:failed")
        record = release.api.wait_verified(eval_id)
    assert status == 7, stderr
    assert (record["status"], record["exit_code"], record["correction"]) == ("failed", 7, None)
    assert "written" in record["output"]  # it did write its forgeries where it could
    ends = terminal_events(release, eval_id)
    assert ends
    assert all((e["type"], e["exit_code"]) == ("failed", 7) for e in ends), ends
    sse = [e for e in release.api.events(eval_id) if e.type in TERMINAL]
    assert sse
    assert all(e.data["exit_code"] == 7 for e in sse), sse
    mine = [h for h in heard if h["eval_id"] == eval_id and h["channel"] != "evaluation:running"]
    assert [(h["channel"], h["exit_code"]) for h in mine] == [("evaluation:failed", 7)], mine


def test_user_code_cannot_signal_trace_or_reach_the_wrapper(release: Release) -> None:
    record = release.api.submit_ok(code=attacks.REACH_THE_WRAPPER)
    done = release.api.wait_verified(record["eval_id"])
    # The wrapper outlived every signal: the verdict is the program's own exit 5, reported
    # through the channel (no "no exit report" reason), with its output.
    assert (done["status"], done["exit_code"], done["reason"]) == ("failed", 5, None), done
    seen = attacks.last_json(done["output"])
    for path in ("/proc/1/environ", "/proc/1/mem", "/proc/1/fd", "/proc/1/root"):
        assert seen[path] == "PermissionError", (path, seen)
    assert seen["ptrace"] != "attached", seen
    assert seen["socket"] in ("FileNotFoundError", "ConnectionRefusedError"), seen
    for name in ("run_write", "run_symlink", "bin_write"):
        assert seen[name] != "done", (name, seen)  # read-only volumes
    assert seen["spool"] == "FileNotFoundError", seen


def kill_sidecar(release: Release, pod: str) -> None:
    kube.kubectl(
        "exec", "-n", release.namespace, pod, "-c", "crucible-sidecar", "--",
        "python", "-c", "import os, signal; os.kill(1, signal.SIGTERM)",
        check=False,
    )  # fmt: skip


def test_a_restarted_sidecar_trusts_no_one(release: Release) -> None:
    """The sidecar restarts mid-run (here: told to stop; in life: a crash or an OOM). User code
    then speaks the wrapper's protocol to the new one and claims exit 0: nothing of that is
    published, and the kubelet's verdict is the only one."""
    record = release.api.submit_ok(
        code=attacks.IMPERSONATE_THE_WRAPPER, env={"ATTACK_SECONDS": "25"}, timeout_seconds=120
    )
    eval_id = record["eval_id"]
    running = release.api.wait(eval_id, lambda r: r["status"] == "running", 120, "running")
    pod = release.pod_of(running["job_name"])["metadata"]["name"]
    kill_sidecar(release, pod)
    deadline = time.monotonic() + 60
    while not _sidecar_restarted(release, running["job_name"]):
        assert time.monotonic() < deadline, "the sidecar was not restarted"
        time.sleep(0.5)
    done = release.api.wait_verified(eval_id, timeout=180)
    assert (done["status"], done["exit_code"]) == ("failed", 7), done
    assert NO_REPORT in (done["reason"] or ""), done
    ends = terminal_events(release, eval_id)
    assert [(e["type"], e["exit_code"], e["source"]) for e in ends] == [
        ("failed", 7, "dispatcher")
    ], ends


def _sidecar_restarted(release: Release, job_name: str) -> bool:
    status = release.pod_of(job_name).get("status", {})
    for container in status.get("initContainerStatuses", []):
        if container["name"] == "crucible-sidecar":
            return int(container.get("restartCount", 0)) > 0
    return False
