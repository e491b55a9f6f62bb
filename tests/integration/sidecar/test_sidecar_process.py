"""``python -m sidecar`` as a real process: exit codes, SIGTERM, and no secret in its log."""

import pathlib
import signal

from sidecar import service, spool
from tests.integration.sidecar.conftest import (
    Paths,
    Spawn,
    eventually,
    finished,
    process_env,
    reassemble,
)
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest


async def test_the_process_publishes_the_evaluation_and_exits_0(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    proc = await sidecar_process(process_env(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stdout", b"out\n")
    await peer.exit(0)

    code, log = await finished(proc)
    assert code == service.EXIT_OK, log
    assert [e.type for e in ingest.published] == ["running", "output", "completed"]
    assert reassemble(ingest.published, "stdout") == "out\n"
    assert "the verdict was published" in log
    assert ingest.token not in log


async def test_a_refused_credential_makes_the_process_exit_non_zero(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    env = process_env(ingest, paths, ingest_token="stolen-or-stale")
    proc = await sidecar_process(env)
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()

    code, log = await finished(proc)
    assert code == service.EXIT_REJECTED, log
    assert "ingest answered 401" in log
    assert "stolen-or-stale" not in log
    assert ingest.published == []
    await peer.close()


async def test_sigterm_before_the_wrapper_connects_exits_0(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    proc = await sidecar_process(process_env(ingest, paths))
    await eventually(lambda: paths.socket.exists() or proc.returncode is not None)
    proc.send_signal(signal.SIGTERM)
    code, log = await finished(proc)
    assert code == service.EXIT_OK, log
    assert not paths.socket.exists()


def mapped_files(pid: int) -> str:
    """The process's memory map (procfs: answered at once)."""
    return pathlib.Path(f"/proc/{pid}/maps").read_text()


async def test_the_process_maps_neither_ssl_nor_pydantic_for_an_http_ingest_url(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    """Its memory is paid per pod: what ``__main__`` keeps out stays out of the real process."""
    assert ingest.url.startswith("http://")
    proc = await sidecar_process(process_env(ingest, paths))
    await eventually(lambda: paths.socket.exists() or proc.returncode is not None)
    mapped = mapped_files(proc.pid)
    assert "libssl" not in mapped
    assert "_ssl." not in mapped
    assert "pydantic" not in mapped
    assert "_asyncio." in mapped  # the check sees extension modules at all
    proc.send_signal(signal.SIGTERM)
    code, log = await finished(proc)
    assert code == service.EXIT_OK, log


async def test_a_restarted_process_waits_for_sigterm_and_serves_nothing(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    (paths.spool / spool.MARKER_NAME).touch()
    proc = await sidecar_process(process_env(ingest, paths, exit_after_terminal="false"))
    assert proc.stderr is not None
    line = await proc.stderr.readline()
    assert b"restarted" in line
    assert proc.returncode is None
    assert not paths.socket.exists()
    proc.send_signal(signal.SIGTERM)
    code, log = await finished(proc)
    assert code == service.EXIT_OK, log
    assert ingest.requests == []


async def test_missing_settings_stop_the_process_at_start(
    ingest: RecordingIngest, paths: Paths, sidecar_process: Spawn
) -> None:
    env = process_env(ingest, paths)
    del env["ingest_url"]
    proc = await sidecar_process(env)
    code, log = await finished(proc)
    assert code != 0
    assert "ingest_url" in log
    assert ingest.token not in log
