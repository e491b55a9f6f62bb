"""The sidecar beside the real wrapper zipapp (``python -m wrapper.pack``), as in a pod."""

import asyncio
import pathlib
import signal
import sys

import pytest

from sidecar import service
from tests.integration.sidecar.conftest import (
    Paths,
    StartSidecar,
    assert_well_formed,
    has_terminal,
    make_settings,
    reassemble,
)
from tests.integration.sidecar.recording_ingest import RecordingIngest
from wire import channel
from wrapper import pack


@pytest.fixture(scope="module")
def wrapper_app(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return pack.build(tmp_path_factory.mktemp("bin") / pack.FILE_NAME)


async def start_wrapper(
    app: pathlib.Path, paths: Paths, code: str, *options: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-I", "-S", str(app), "--channel", str(paths.socket), *options),
        *("--", sys.executable, "-c", code),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_real_evaluation_is_reported_from_start_to_end(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    code = "import sys\nfor i in range(3000): print('line', i, 'é')\n"
    code += "print('bad', file=sys.stderr)\nsys.exit(3)"
    wrapper = await start_wrapper(wrapper_app, paths, code)
    assert await asyncio.wait_for(wrapper.wait(), 60) == 3

    assert await sidecar.result() == service.EXIT_OK
    found = ingest.published
    assert_well_formed(ingest)
    assert found[0].type == "running"
    expected = "".join(f"line {i} é\n" for i in range(3000))
    assert reassemble(found, "stdout") == expected
    assert reassemble(found, "stderr") == "bad\n"
    assert (found[-1].type, found[-1].exit_code, found[-1].error) == ("failed", 3, "bad\n")


async def test_the_wrapper_s_timeout_is_the_verdict(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    wrapper = await start_wrapper(
        wrapper_app, paths, "import time; time.sleep(60)", "--timeout", "0.5", "--grace", "1"
    )
    await asyncio.wait_for(wrapper.wait(), 60)
    assert await sidecar.result() == service.EXIT_OK
    end = ingest.published[-1]
    assert (end.type, end.reason) == ("timeout", "timeout after 0.5s")


async def test_output_beyond_the_cap_arrives_capped_once(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths, output_cap_bytes=1000))
    code = "import sys; sys.stdout.write('z' * 5000)"
    wrapper = await start_wrapper(wrapper_app, paths, code, "--output-cap", "1000")
    assert await asyncio.wait_for(wrapper.wait(), 60) == 0
    assert await sidecar.result() == service.EXIT_OK
    expected = "z" * 1000 + channel.TRUNCATION_MARKER.decode()
    assert reassemble(ingest.published, "stdout") == expected
    assert ingest.published[-1].truncated is True


async def test_a_wrapper_killed_mid_run_leaves_no_verdict_from_the_sidecar(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, wrapper_app: pathlib.Path
) -> None:
    # As an OOM kill of the main container: the channel ends without EXIT.
    sidecar = await start_sidecar(make_settings(ingest, paths))
    # The command ends by itself once its output pipe is gone (BrokenPipeError): no orphan.
    code = "import time\nwhile True:\n    print('working', flush=True)\n    time.sleep(0.05)"
    wrapper = await start_wrapper(wrapper_app, paths, code)
    await ingest.wait_for(lambda found: any(e.type == "output" for e in found))
    wrapper.send_signal(signal.SIGKILL)
    await wrapper.wait()

    assert await sidecar.result() == service.EXIT_OK
    assert not has_terminal(ingest.published)
    lines = reassemble(ingest.published, "stdout").split("\n")
    assert set(lines[:-1]) == {"working"}
    assert lines[-1] == ""
