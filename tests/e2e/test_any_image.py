"""The bundled wrapper in executor images without Python: busybox's shell and applets, and one
static program with no shell at all (tests/cluster/images.sh). Every outcome, from the kubelet's
verified verdict, with the output captured live."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Release

# What each image runs for each outcome: busybox commands, or the probe's argv actions.
COMMANDS: dict[str, dict[str, list[str]]] = {
    "shell": {
        "exit0": ["sh", "-c", "echo hello from sh; echo to stderr >&2"],
        "exitN": ["sh", "-c", "echo going down; exit 7"],
        "live": ["sh", "-c", "echo started; sleep 600"],
        # Command substitution keeps the whole stream in the shell's memory.
        "oom": ["sh", "-c", "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo survived"],
    },
    "noshell": {
        "exit0": ["/probe", "out", "hello from probe", "err", "to stderr"],
        "exitN": ["/probe", "out", "going down", "exit", "7"],
        "live": ["/probe", "out", "started", "sleep", "600"],
        "oom": ["/probe", "alloc", "out", "survived"],
    },
}
IMAGES = sorted(COMMANDS)


def submit(release: Release, image: str, outcome: str, **extra: Any) -> str:
    record = release.api.submit_ok(image=image, command=COMMANDS[image][outcome], **extra)
    eval_id: str = record["eval_id"]
    return eval_id


@pytest.mark.parametrize("image", IMAGES)
def test_exit_codes_and_output(release: Release, image: str) -> None:
    ok = submit(release, image, "exit0")
    failing = submit(release, image, "exitN")
    done = release.api.wait_verified(ok)
    assert (done["status"], done["exit_code"], done["verified"]) == ("completed", 0, True), str(
        done
    )
    assert done["output"].startswith("hello from"), done
    assert done["error"] == "to stderr\n", done
    done = release.api.wait_verified(failing)
    assert (done["status"], done["exit_code"], done["verified"]) == ("failed", 7, True), done
    assert done["output"] == "going down\n", done


@pytest.mark.parametrize("image", IMAGES)
def test_output_is_live_and_the_timeout_ends_it(release: Release, image: str) -> None:
    eval_id = submit(release, image, "live", timeout_seconds=8)
    statuses_at_output = []
    for event in release.api.events(eval_id, timeout=120):
        if event.type == "output" and "started" in event.data["data"]:
            # The line arrives while the command still runs, not with the verdict.
            statuses_at_output.append(release.api.get(eval_id)["status"])
        if event.type in ("timeout", "completed", "failed", "error", "cancelled"):
            break
    assert statuses_at_output == ["running"]
    done = release.api.wait_verified(eval_id)
    assert (done["status"], done["verified"]) == ("timeout", True), done
    assert done["output"] == "started\n", done


@pytest.mark.parametrize("image", IMAGES)
def test_oom_killed(release: Release, image: str) -> None:
    eval_id = submit(release, image, "oom", resources={"memory": "64Mi", "cpu": "500m"})
    done = release.api.wait_verified(eval_id, timeout=180)
    assert (done["status"], done["reason"], done["verified"]) == ("failed", "OOMKilled", True), done
    assert "survived" not in (done["output"] or "")
