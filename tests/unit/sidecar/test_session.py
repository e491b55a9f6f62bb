"""One channel session over a socket pair: frames in, the spool and the outbox fed."""

import asyncio
import pathlib
import socket
from collections.abc import AsyncIterator

import pytest

from sidecar import outbox, session, spool
from wire import channel, event_dicts

HELLO = channel.json_frame(channel.HELLO, channel.hello_record(7))
STARTED = channel.json_frame(channel.STARTED, channel.started_record(7, ["x"], 1.5))


class Harness:
    def __init__(self, tmp_path: pathlib.Path) -> None:
        self.box = outbox.Outbox(batch_bytes=1024, batch_interval=0)
        self.spool = spool.Spool(str(tmp_path), cap=100)
        self.session = session.Session("ev", self.box, self.spool)
        self.ours, self.theirs = socket.socketpair()
        self.theirs.setblocking(False)

    async def run(self, *frames: bytes) -> session.Outcome:
        reader, writer = await asyncio.open_unix_connection(sock=self.ours)
        await asyncio.get_running_loop().sock_sendall(self.theirs, b"".join(frames))
        self.theirs.shutdown(socket.SHUT_WR)
        return await self.session.run(reader, writer)

    async def replies(self) -> bytes:
        """All the session wrote, up to its close."""
        received = b""
        async with asyncio.timeout(5):
            while chunk := await asyncio.get_running_loop().sock_recv(self.theirs, 4096):
                received += chunk
        return received

    async def items(self) -> list[outbox.Item]:
        taken: list[outbox.Item] = []
        while (item := await self.box.next()) is not None:
            taken.append(item)
            if isinstance(item, outbox.EventItem):
                self.box.done_event(item)
            else:
                self.box.done_output(item, item.limit)
        return taken


@pytest.fixture
async def harness(tmp_path: pathlib.Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path)
    yield made
    made.spool.close()
    made.theirs.close()


async def test_a_whole_session_feeds_running_output_and_the_end(harness: Harness) -> None:
    outcome = await harness.run(
        HELLO,
        STARTED,
        channel.frame(channel.STDOUT, b"out"),
        channel.frame(channel.STDERR, b"err"),
        channel.json_frame(channel.EXIT, channel.exit_record(1)),
    )
    assert outcome is session.Outcome.ENDED
    assert await harness.replies() == channel.json_frame(channel.ACK, {"v": 1})
    items = await harness.items()
    assert isinstance(items[0], outbox.EventItem)
    assert items[0].event["type"] == "running"
    assert {(i.stream, i.limit) for i in items[1:-1] if isinstance(i, outbox.OutputItem)} == {
        ("stdout", 3),
        ("stderr", 3),
    }
    end = items[-1]
    assert isinstance(end, outbox.EventItem)
    assert (end.event["type"], end.event["output"], end.event["error"]) == ("failed", "out", "err")
    assert end.token == "terminal"


async def test_the_spool_takes_the_output_capped(harness: Harness) -> None:
    await harness.run(HELLO, STARTED, channel.frame(channel.STDOUT, b"x" * 150))
    stdout = harness.spool.streams["stdout"]
    assert stdout.read(0, 1000) == b"x" * 100 + channel.TRUNCATION_MARKER
    assert stdout.dropped == 50


@pytest.mark.parametrize(
    "after_hello",
    [
        [STARTED, STARTED],  # STARTED twice
        [HELLO],  # HELLO twice
        [channel.json_frame(channel.ACK, {"v": 1})],  # the sidecar's frame, from the peer
        [channel.frame(channel.EXIT, b"[1, 2]")],  # EXIT not an object
        [STARTED, channel.frame(channel.STDOUT, b"abc")[:-1]],  # cut short
        [STARTED],  # EOF before EXIT
    ],
)
async def test_anything_but_a_clean_exit_is_a_lost_channel_without_a_verdict(
    harness: Harness, after_hello: list[bytes]
) -> None:
    outcome = await harness.run(HELLO, *after_hello)
    assert outcome is session.Outcome.LOST
    items = await harness.items()  # the outbox is closed: output is flushed, no end made up
    assert not any(
        isinstance(i, outbox.EventItem) and event_dicts.is_terminal(i.event) for i in items
    )


async def test_no_hello_no_ack(harness: Harness) -> None:
    assert await harness.run(STARTED) is session.Outcome.REFUSED
    assert await harness.replies() == b""
    assert await harness.items() == []
