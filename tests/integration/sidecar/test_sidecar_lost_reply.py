"""A reply lost after Redis ran the publish: the retry is deduplicated, not published twice."""

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest

from sidecar import builders, publisher, streams
from tests.integration.sidecar.conftest import make_settings, read_events

pytestmark = pytest.mark.integration


class ReplyDroppingProxy:
    """A TCP proxy to Redis that, when armed, cuts the connection instead of passing a reply."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.drop_next_reply = False
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if self.drop_next_reply:
                    self.drop_next_reply = False
                    self.dropped += 1
                    return
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        self._tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[tuple[ReplyDroppingProxy, str]]:
    target = urlparse(redis_url)
    assert target.hostname is not None
    assert target.port is not None
    relay = ReplyDroppingProxy(target.hostname, target.port)
    port = await relay.start()
    yield relay, f"redis://127.0.0.1:{port}/0"
    await relay.close()


async def test_a_lost_reply_is_retried_and_deduplicated(
    redis_url: str, proxy: tuple[ReplyDroppingProxy, str], tmp_path: pathlib.Path
) -> None:
    relay, via_proxy = proxy
    async with publisher.connect(make_settings(via_proxy, tmp_path)) as client:
        events_out = publisher.EventPublisher(streams.Publisher(client))
        running = builders.running_event("ev-x", {"started_at": 1.0})
        first = await events_out.publish(running, builders.RUNNING_TOKEN)
        relay.drop_next_reply = True
        output = builders.output_event("ev-x", "stdout", 0, "hi")
        second = await events_out.publish(output, builders.output_token("stdout", 0, 2))

    assert relay.dropped == 1
    assert events_out.counts.retries == 1
    assert (first.seq, second.seq) == (1, 2)
    assert second.duplicate  # the retry found the first attempt's result
    found = await read_events(redis_url, "ev-x")
    assert [(e.seq, e.type) for e in found] == [(1, "running"), (2, "output")]
