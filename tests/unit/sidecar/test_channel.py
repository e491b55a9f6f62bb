"""The sidecar's end of the channel: one listener for one connection, and frames read whole."""

import asyncio
import os
import pathlib
import socket
import stat
import tempfile
from collections.abc import Iterator

import pytest

from sidecar import channel
from wire import channel as wire


def gone(path: pathlib.Path) -> bool:
    return not path.exists()


@pytest.fixture
def sock_path() -> Iterator[pathlib.Path]:
    with tempfile.TemporaryDirectory(prefix="cs-") as directory:  # short: a socket path limit
        yield pathlib.Path(directory) / "channel.sock"


async def test_the_socket_appears_listening_and_world_connectable(sock_path: pathlib.Path) -> None:
    listener = channel.Listener(str(sock_path))
    listener.open()
    mode = os.stat(sock_path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o666
    assert os.listdir(sock_path.parent) == ["channel.sock"]  # no staging name left behind
    listener.close()
    assert gone(sock_path)


async def test_a_stale_socket_is_replaced(sock_path: pathlib.Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))
    stale.close()
    listener = channel.Listener(str(sock_path))
    listener.open()
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(sock_path))
    conn = await listener.accept()
    conn.close()
    client.close()


async def test_after_the_first_connection_nobody_can_connect(sock_path: pathlib.Path) -> None:
    listener = channel.Listener(str(sock_path))
    listener.open()
    accepting = asyncio.create_task(listener.accept())
    _, writer = await asyncio.open_unix_connection(str(sock_path))
    conn = await accepting
    assert gone(sock_path)
    with pytest.raises(FileNotFoundError):
        await asyncio.open_unix_connection(str(sock_path))
    conn.close()
    writer.close()
    await writer.wait_closed()


async def test_accept_cancelled_closes_the_listener(sock_path: pathlib.Path) -> None:
    listener = channel.Listener(str(sock_path))
    listener.open()
    accepting = asyncio.create_task(listener.accept())
    await asyncio.sleep(0)
    accepting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await accepting
    assert gone(sock_path)


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_are_read_whole_and_a_clean_end_is_none() -> None:
    data = wire.frame(wire.STDOUT, b"abc") + wire.json_frame(wire.EXIT, {"exit_code": 0})
    reader = reader_of(data)
    assert await channel.read_frame(reader) == (wire.STDOUT, b"abc")
    kind, payload = await channel.read_frame(reader) or (b"", b"")
    assert (kind, wire.parse_json(payload)) == (wire.EXIT, {"exit_code": 0})
    assert await channel.read_frame(reader) is None


@pytest.mark.parametrize(
    "data",
    [
        wire.frame(wire.STDOUT, b"abc")[:-1],  # cut inside the payload
        wire.frame(wire.STDOUT, b"abc")[:3],  # cut inside the header
        b"Z\x00\x00\x00\x01x",  # an unknown kind
        wire.HEADER.pack(wire.STDOUT, wire.MAX_FRAME + 1),  # too big
    ],
)
async def test_a_frame_that_breaks_the_contract_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        await channel.read_frame(reader_of(data))
