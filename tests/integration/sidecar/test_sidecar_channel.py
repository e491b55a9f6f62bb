"""The channel end to end in-process: frames from a wrapper peer in, events at the recording
ingest stand-in out, in order, each once; the cap enforced; no verdict without EXIT."""

import asyncio
import contextlib
import socket
import stat
from typing import Any

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
from tests.integration.sidecar.peer import WrapperPeer
from tests.integration.sidecar.recording_ingest import RecordingIngest
from wire import channel


async def test_frames_in_order_become_events_in_order(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started(started_at=1_700_000_000.25)
    await ingest.wait_for(lambda found: len(found) == 1)  # running goes out on its own
    await peer.output("stdout", b"hello ")
    await peer.output("stderr", b"warning\n")
    await peer.output("stdout", "wörld\n".encode())
    await peer.exit(0, duration_seconds=1.5)

    assert await sidecar.result() == service.EXIT_OK
    found = ingest.published
    assert_well_formed(ingest)
    assert (found[0].type, found[0].started_at) == ("running", 1_700_000_000.25)
    assert reassemble(found, "stdout") == "hello wörld\n"
    assert reassemble(found, "stderr") == "warning\n"
    terminal = found[-1]
    assert (terminal.type, terminal.exit_code, terminal.duration_seconds) == ("completed", 0, 1.5)
    assert (terminal.output, terminal.error) == ("hello wörld\n", "warning\n")
    assert (terminal.verified, terminal.truncated) == (False, False)
    assert ingest.stored[0].token == "running"
    assert ingest.stored[-1].token == "terminal"


@pytest.mark.parametrize(
    ("record", "expected_type", "reason"),
    [
        ({"exit_code": 3}, "failed", None),
        ({"exit_code": 137, "signal": 9}, "failed", None),
        (
            {"exit_code": 124, "timed_out": True, "timeout_seconds": 2.0},
            "timeout",
            "timeout after 2s",
        ),
        (
            {"exit_code": 127, "wrapper_error": "command not found: x"},
            "error",
            "command not found: x",
        ),
    ],
)
async def test_the_exit_record_decides_the_verdict(
    ingest: RecordingIngest,
    paths: Paths,
    start_sidecar: StartSidecar,
    record: dict[str, Any],
    expected_type: str,
    reason: str | None,
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stderr", b"Traceback ...\n")
    await peer.exit(**record)

    assert await sidecar.result() == service.EXIT_OK
    terminal = ingest.published[-1]
    assert (terminal.type, terminal.reason) == (expected_type, reason)
    assert terminal.exit_code == record["exit_code"]
    assert terminal.error == "Traceback ...\n"


async def test_output_is_capped_with_one_marker_whatever_the_wrapper_sends(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths, output_cap_bytes=1000))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    for _ in range(5):
        await peer.output("stdout", b"x" * 700)
    await peer.output("stderr", b"small\n")
    await peer.exit(0)  # the record claims nothing was truncated

    assert await sidecar.result() == service.EXIT_OK
    found = ingest.published
    assert_well_formed(ingest)
    expected = "x" * 1000 + channel.TRUNCATION_MARKER.decode()
    assert reassemble(found, "stdout") == expected
    assert reassemble(found, "stderr") == "small\n"
    terminal = found[-1]
    assert terminal.truncated is True
    assert terminal.output == expected


async def test_a_cap_the_wrapper_already_applied_gives_the_same_bytes(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths, output_cap_bytes=100))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stdout", b"y" * 100 + channel.TRUNCATION_MARKER)
    await peer.exit(0, stdout_truncated=True)

    assert await sidecar.result() == service.EXIT_OK
    expected = "y" * 100 + channel.TRUNCATION_MARKER.decode()
    assert reassemble(ingest.published, "stdout") == expected
    assert ingest.published[-1].truncated is True


async def test_a_character_split_across_frames_is_published_whole(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths, batch_interval_seconds=0))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    raw = "€𝄞".encode()
    for i in range(len(raw)):
        await peer.output("stdout", raw[i : i + 1])
        await asyncio.sleep(0.01)
    await peer.exit(0)

    assert await sidecar.result() == service.EXIT_OK
    assert reassemble(ingest.published, "stdout") == "€𝄞"
    assert all("\ufffd" not in (e.data or "") for e in ingest.published)


async def test_eof_before_exit_flushes_output_and_publishes_no_verdict(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths, batch_interval_seconds=30))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    await peer.output("stdout", b"partial output, then the wrapper was OOM-killed\n")
    await peer.close()

    assert await sidecar.result() == service.EXIT_OK
    found = ingest.published
    assert not has_terminal(found)
    assert [e.type for e in found] == ["running", "output"]
    assert reassemble(found, "stdout") == "partial output, then the wrapper was OOM-killed\n"


async def test_a_frame_cut_short_is_a_lost_channel(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.hold(paths.socket)
    await peer.started()
    exit_frame = channel.json_frame(channel.EXIT, channel.exit_record(0))
    await peer.send(exit_frame[:-3])
    await peer.close()

    assert await sidecar.result() == service.EXIT_OK
    assert [e.type for e in ingest.published] == ["running"]


@pytest.mark.parametrize(
    "first",
    [
        channel.json_frame(channel.STARTED, channel.started_record(1, ["x"], 1.0)),
        channel.json_frame(channel.HELLO, {"v": 99, "pid": 1}),
        channel.frame(channel.HELLO, b"not json"),
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
async def test_without_a_valid_hello_the_connection_is_dropped_and_nothing_published(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar, first: bytes
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    peer = await WrapperPeer.connect(paths.socket)
    await peer.send(first)
    assert await peer.read_frame() is None  # no ACK: the connection is closed
    await peer.close()
    assert await sidecar.result() == service.EXIT_REFUSED
    assert ingest.requests == []


async def test_the_socket_is_world_connectable_until_the_one_connection_then_gone(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o666
    assert stat.S_ISSOCK(paths.socket.stat().st_mode)
    peer = await WrapperPeer.hold(paths.socket)
    assert not paths.socket.exists()
    with pytest.raises(FileNotFoundError):
        await asyncio.open_unix_connection(str(paths.socket))
    await peer.started()
    await peer.exit(0)
    assert await sidecar.result() == service.EXIT_OK


async def test_a_second_queued_connection_is_refused_and_only_the_first_is_served(
    ingest: RecordingIngest, paths: Paths, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(ingest, paths))
    # Both connect before the sidecar's loop runs again: both sit in the listen queue.
    first, second = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    first.connect(str(paths.socket))
    second.connect(str(paths.socket))
    hello = channel.json_frame(channel.HELLO, channel.hello_record(1))
    reader, writer = await asyncio.open_unix_connection(sock=first)
    intruder = WrapperPeer(*await asyncio.open_unix_connection(sock=second))
    with contextlib.suppress(ConnectionError):
        await intruder.send(hello)
    assert await intruder.read_frame() is None  # reset or closed: never an ACK

    peer = WrapperPeer(reader, writer)
    await peer.send(hello)
    ack = await peer.read_frame()
    assert ack is not None
    assert ack[0] == channel.ACK
    await peer.started()
    await peer.exit(0)
    assert await sidecar.result() == service.EXIT_OK
    assert [e.type for e in ingest.published] == ["running", "completed"]
    await intruder.close()
