"""Connections a client can make the dispatcher hold are bounded: the Redis pool of the API's
commands, and the event streams (each holds a Redis connection in a blocking read)."""

import asyncio
import contextlib
import os
import pathlib
import sys

import aiohttp
import pytest
import redis.asyncio

from dispatcher.backends.local import backend as local_backend
from tests import redis_mode, redisproc
from tests.integration.pipeline.harness import wait_until_ready

pytestmark = pytest.mark.integration
POOL = 4
STREAMS = 3


@redis_mode.one_server_only
async def test_a_burst_of_requests_and_streams_holds_bounded_redis_connections(
    tmp_path: pathlib.Path, redis_url: str, redis_client: redis.asyncio.Redis
) -> None:
    port = redisproc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_REDIS_CLUSTER": str(redis_mode.CLUSTER).lower(),
        "CRUCIBLE_REDIS_POOL_MAX": str(POOL),
        "CRUCIBLE_SSE_STREAMS_MAX": str(STREAMS),
        "CRUCIBLE_LOCAL__CONCURRENCY": "0",
        "CRUCIBLE_LOCAL__QUEUE_SIZE": "1000",
        "CRUCIBLE_LOCAL__WORK_ROOT": str(tmp_path / "work"),
    }
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatcher", env=env)
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            await wait_until_ready(http)
            before = await _clients(redis_client)

            async def submit(i: int) -> int:
                body = {"eval_id": f"burst-{i}", "code": "print(1)"}
                async with http.post("/v1/evaluations", json=body) as response:
                    return response.status

            statuses = await asyncio.gather(*(submit(i) for i in range(200)))
            assert set(statuses) == {201}  # they waited for a connection, none failed
            streams = [await http.get(f"/v1/evaluations/burst-{i}/events") for i in range(5)]
            assert sorted(s.status for s in streams) == [200] * STREAMS + [429] * 2
            assert all("Retry-After" in s.headers for s in streams if s.status == 429)
            # The API's pool (the consumer's read included), the streams' pool, the local
            # backend's own: no more, where a connection per request was opened before.
            bound = POOL + STREAMS + local_backend.REDIS_POOL_MAX
            assert await _clients(redis_client) - before <= bound
            for stream in streams:
                stream.close()
    finally:
        server.terminate()
        await server.wait()


async def _clients(client: redis.asyncio.Redis) -> int:
    return len(await client.client_list())


async def test_a_slow_loris_head_is_cut_off(tmp_path: pathlib.Path, redis_url: str) -> None:
    """Headers trickled in hold the connection for head_timeout_seconds, not for ever."""
    port = redisproc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_REDIS_CLUSTER": str(redis_mode.CLUSTER).lower(),
        "CRUCIBLE_HEAD_TIMEOUT_SECONDS": "0.5",
        "CRUCIBLE_LOCAL__WORK_ROOT": str(tmp_path / "work"),
    }
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatcher", env=env)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await wait_until_ready(http)  # a prompt request is served as ever
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:
            for _ in range(50):
                await asyncio.sleep(0.1)
                writer.write(b"X-Slow: 1\r\n")

        trickling = asyncio.create_task(trickle())
        assert await asyncio.wait_for(_read_until_closed(reader), 5) == b""  # nothing answered
        assert asyncio.get_running_loop().time() - started < 2
        trickling.cancel()
        writer.close()
    finally:
        server.terminate()
        assert await server.wait() == 0  # SIGTERM still ends it cleanly


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What arrived before the server closed. A close while the client's trickled lines sit
    unread in the server's socket is a reset rather than an end of stream: closed either way."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(4096):
            received += chunk
    return received
