"""A restarted sidecar trusts no connection, and the spool is never followed anywhere."""

import asyncio
import contextlib
import os

import pytest

from sidecar import service, spool
from tests.integration.sidecar.conftest import Paths, StartSidecar, make_settings
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest
from wire import channel


async def test_a_restarted_sidecar_listens_to_nobody_and_publishes_nothing(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    first = await start_sidecar(make_settings(ingest, paths, exit_after_terminal=False))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await ingest.wait_for(lambda found: len(found) == 1)
    first.task.cancel()  # the container dies; the kubelet starts it again in the same pod
    with pytest.raises(asyncio.CancelledError):
        await first.task

    again = await start_sidecar(
        make_settings(ingest, paths, exit_after_terminal=False), listening=False
    )
    await asyncio.sleep(0.2)
    assert not paths.socket.exists()
    with pytest.raises(FileNotFoundError):
        await asyncio.open_unix_connection(str(paths.socket))
    assert not again.task.done()  # it waits for SIGTERM
    assert await again.terminate() == service.EXIT_OK
    assert [e.type for e in ingest.published] == ["running"]
    await peer.close()


async def test_a_restarted_sidecar_exits_at_once_when_told_to_exit_after_the_end(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    (paths.spool / spool.MARKER_NAME).touch()
    sidecar = await start_sidecar(make_settings(ingest, paths), listening=False)
    assert await sidecar.result() == service.EXIT_OK
    assert not paths.socket.exists()
    assert ingest.requests == []


@pytest.mark.parametrize("name", ["stdout", "stderr"])
async def test_a_symlink_planted_in_the_spool_is_not_followed(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, name: str
) -> None:
    secret = paths.spool.parent / "secret"
    secret.write_text("redis-password\n")
    os.symlink(secret, paths.spool / name)
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.connect(paths.socket)
    with contextlib.suppress(ConnectionError):
        await peer.send(channel.json_frame(channel.HELLO, channel.hello_record(1)))
    assert await peer.read_frame() is None  # no ACK: the wrapper never starts user code
    assert await sidecar.result() == service.EXIT_REFUSED
    assert ingest.requests == []
    assert secret.read_text() == "redis-password\n"
    await peer.close()


async def test_a_symlink_at_the_marker_counts_as_a_restart(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    os.symlink(paths.spool.parent / "nowhere", paths.spool / spool.MARKER_NAME)
    sidecar = await start_sidecar(make_settings(ingest, paths), listening=False)
    assert await sidecar.result() == service.EXIT_OK
    assert not paths.socket.exists()
    assert not (paths.spool.parent / "nowhere").exists()
