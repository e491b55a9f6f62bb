"""A ``code`` evaluation's program: the sidecar fetches it into a file before it listens (so
the command, started only after the wrapper connected, reads it whole), retries the
dispatcher's transient failures, and refuses to serve when there is no program."""

import os
import stat

from sidecar import service
from tests.integration.sidecar.conftest import Paths, StartSidecar, make_settings
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest

PROGRAM = ("print('hello')\n" + "#" * 200_000 + "\n").encode()


async def test_the_program_is_in_its_file_before_the_socket_exists(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    ingest.program = PROGRAM
    ingest.answer_next(503, times=2, Retry_After="0")
    target = paths.socket.parent / "program.py"
    sidecar = await start_sidecar(make_settings(ingest, paths, code_file=target))
    # start_sidecar returned once the socket existed: the file was there before.
    assert target.read_bytes() == PROGRAM
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert [name for name in os.listdir(target.parent) if name.startswith(".")] == []
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.exit(0)
    assert await sidecar.result() == service.EXIT_OK
    assert [status for status, _ in ingest.requests][:3] == [503, 503, 200]


async def test_without_a_program_it_never_listens_and_publishes_nothing(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    target = paths.socket.parent / "program.py"
    sidecar = await start_sidecar(make_settings(ingest, paths, code_file=target), listening=False)
    assert await sidecar.result() == service.EXIT_REFUSED
    assert not paths.socket.exists()
    assert not target.exists()
    assert ingest.published == []
