"""The sidecar beside the real wrapper zipapp (``python -m wrapper.pack``), as in a pod."""

import pathlib
import subprocess
import sys

import pytest

from sidecar import events
from tests.integration.sidecar.conftest import (
    StartSidecar,
    assert_well_formed,
    has_terminal,
    make_settings,
    reassemble,
    wait_for_events,
)
from wrapper import pack, state

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wrapper_app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return pack.build(tmp_path_factory.mktemp("bin") / pack.FILE_NAME)


def run_wrapper(app: pathlib.Path, state_dir: pathlib.Path, *args: str) -> int:
    command = [sys.executable, "-I", "-S", str(app), "--state-dir", str(state_dir), *args]
    return subprocess.run(command, capture_output=True, timeout=60).returncode


async def test_a_real_evaluation_is_reported_from_start_to_end(
    redis_url: str, tmp_path: pathlib.Path, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    sidecar = await start_sidecar(make_settings(redis_url, state_dir))
    code = (
        "import sys\nfor i in range(3000): print('line', i, 'é')\nprint('bad', file=sys.stderr)\n"
    )
    code += "sys.exit(4)"
    assert run_wrapper(wrapper_app, state_dir, "--", sys.executable, "-c", code) == 4

    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert_well_formed(found)
    expected = "".join(f"line {i} é\n" for i in range(3000))
    assert reassemble(found, "stdout") == expected
    assert reassemble(found, "stderr") == "bad\n"
    assert (found[-1].type, found[-1].exit_code) == (events.EventType.FAILED, 4)
    assert found[-1].output == expected


async def test_a_real_timeout_and_a_missing_command(
    redis_url: str, tmp_path: pathlib.Path, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    timed = tmp_path / "timed"
    timed.mkdir()
    sidecar = await start_sidecar(make_settings(redis_url, timed, eval_id="ev-t"))
    sleeper = [sys.executable, "-c", "import time; print('zz', flush=True); time.sleep(60)"]
    run_wrapper(wrapper_app, timed, "--timeout", "0.5", "--grace", "1", "--", *sleeper)
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-t", has_terminal)
    assert [e.type for e in found] == ["running", "output", "timeout"]
    assert found[-1].reason is not None
    assert found[-1].reason.startswith("timeout after")

    missing = tmp_path / "missing"
    missing.mkdir()
    sidecar = await start_sidecar(make_settings(redis_url, missing, eval_id="ev-m"))
    assert run_wrapper(wrapper_app, missing, "--", "no-such-command-xyz") == state.EXIT_NOT_FOUND
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-m", has_terminal)
    assert found[-1].type == events.EventType.ERROR
    assert found[-1].exit_code == state.EXIT_NOT_FOUND
    assert found[-1].reason
