"""WrapperPeer: speaks the wrapper's side of ``wire.channel`` for sidecar tests.

It sends exactly the frames the contract names, in the order the wrapper sends them, and can
also break the contract on purpose (no HELLO, a cut frame, an early close).
"""

import asyncio
import contextlib
import pathlib
from typing import Any

from wire import channel


class WrapperPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: pathlib.Path, within: float = 20.0) -> "WrapperPeer":
        """Connect as soon as the socket is there (as the wrapper does), without HELLO."""
        async with asyncio.timeout(within):
            while True:
                try:
                    reader, writer = await asyncio.open_unix_connection(str(path))
                    return cls(reader, writer)
                except (FileNotFoundError, ConnectionRefusedError):
                    await asyncio.sleep(0.005)

    @classmethod
    async def hold(cls, path: pathlib.Path) -> "WrapperPeer":
        """Connect, say HELLO and wait for the ACK: the channel is held."""
        peer = await cls.connect(path)
        await peer.send(channel.json_frame(channel.HELLO, channel.hello_record(4242)))
        ack = await peer.read_frame()
        assert ack is not None, "no ACK: the sidecar closed the channel"
        assert ack[0] == channel.ACK
        assert channel.parse_json(ack[1]) == {"v": channel.VERSION}
        return peer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def started(self, started_at: float = 1_700_000_000.5) -> None:
        record = channel.started_record(4242, ["python", "-c", "..."], started_at)
        await self.send(channel.json_frame(channel.STARTED, record))

    async def output(self, stream: str, data: bytes) -> None:
        kind = channel.STDOUT if stream == "stdout" else channel.STDERR
        for start in range(0, len(data), channel.MAX_CHUNK):
            await self.send(channel.frame(kind, data[start : start + channel.MAX_CHUNK]))

    async def exit(self, exit_code: int = 0, **fields: Any) -> None:
        await self.send(channel.json_frame(channel.EXIT, channel.exit_record(exit_code, **fields)))
        await self.close()

    async def read_frame(self) -> tuple[bytes, bytes] | None:
        try:
            header = await self.reader.readexactly(channel.HEADER.size)
            kind, length = channel.parse_header(header)
            return kind, await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def closed_by_sidecar(self, within: float = 10.0) -> bool:
        """True once the sidecar has closed its end (EOF or reset)."""
        async with asyncio.timeout(within):
            try:
                return await self.reader.read(1) == b""
            except ConnectionError:
                return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
