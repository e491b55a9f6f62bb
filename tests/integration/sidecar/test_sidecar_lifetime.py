"""When the sidecar exits: once the verdict is out (a native sidecar too), else with
``exit_after_terminal`` when the channel ends, else at SIGTERM; a stop drains what comes within
``drain_deadline_seconds``."""

import asyncio

from sidecar import service
from tests.integration.sidecar.conftest import (
    Paths,
    RunningSidecar,
    StartSidecar,
    has_terminal,
    make_settings,
    reassemble,
)
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest


async def test_a_stop_waits_for_the_exit_that_is_on_its_way(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    # A plain sidecar gets SIGTERM with the main container: the wrapper's EXIT follows.
    sidecar = await start_sidecar(make_settings(ingest, paths, batch_interval_seconds=30))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stdout", b"before the stop\n")
    await ingest.wait_for(lambda found: len(found) == 1)
    sidecar.stop.set()
    await ingest.wait_for(lambda found: len(found) == 2)  # output is due at once when stopping
    await peer.output("stdout", b"after the stop\n")
    await peer.exit(143, signal=15)

    assert await sidecar.result() == service.EXIT_OK
    found = ingest.published
    assert [e.type for e in found] == ["running", "output", "output", "failed"]
    assert reassemble(found, "stdout") == "before the stop\nafter the stop\n"


async def test_a_stop_gives_up_at_the_deadline_without_a_verdict(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    config = make_settings(ingest, paths, drain_deadline_seconds=0.3)
    sidecar = await start_sidecar(config)
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stderr", b"still running\n")
    sidecar.stop.set()

    assert await sidecar.result() == service.EXIT_DRAIN_INCOMPLETE
    assert not has_terminal(ingest.published)
    assert reassemble(ingest.published, "stderr") == "still running\n"
    assert await peer.closed_by_sidecar()
    await peer.close()


async def native_with_its_wrapper(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> tuple[RunningSidecar, WrapperPeer]:
    """A native sidecar (``exit_after_terminal`` false) holding a started wrapper's channel."""
    sidecar = await start_sidecar(make_settings(ingest, paths, exit_after_terminal=False))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    return sidecar, peer


async def test_a_native_sidecar_leaves_once_the_verdict_is_out(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    # Not at the kubelet's SIGTERM, which would hold the pod's end back by a relist.
    sidecar, peer = await native_with_its_wrapper(ingest, paths, start_sidecar)
    await peer.exit(0)
    assert await sidecar.result() == service.EXIT_OK
    assert has_terminal(ingest.published)
    await peer.close()


async def test_a_native_sidecar_without_a_verdict_stays_until_stopped(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    # The channel ended with no EXIT: the kubelet restarts what exits, and a restarted sidecar
    # trusts no connection; staying up until SIGTERM is all there is left to do.
    sidecar, peer = await native_with_its_wrapper(ingest, paths, start_sidecar)
    await peer.close()
    await asyncio.sleep(0.2)
    assert not sidecar.task.done()
    assert await sidecar.terminate() == service.EXIT_OK
    assert not has_terminal(ingest.published)


async def test_a_stop_before_the_wrapper_connects_exits_and_removes_the_socket(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    assert paths.socket.exists()
    assert await sidecar.terminate() == service.EXIT_OK
    assert not paths.socket.exists()
    assert ingest.requests == []
