"""SIGTERM, as Kubernetes sends it in a rollout: the dispatcher goes on serving for
shutdown_delay_seconds, saying it is not ready, so that no connection is refused while the
Service's endpoints catch up; then it stops cleanly. SIGINT (Ctrl-C) does not wait."""

import asyncio
import os
import pathlib
import signal
import sys

import aiohttp
import pytest

from tests import redis_mode, redisproc
from tests.integration.pipeline.harness import wait_until_ready

pytestmark = pytest.mark.integration


async def _serve(tmp_path: pathlib.Path, redis_url: str, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_REDIS_CLUSTER": str(redis_mode.CLUSTER).lower(),
        "CRUCIBLE_SHUTDOWN_DELAY_SECONDS": "1.5",
        "CRUCIBLE_LOCAL__WORK_ROOT": str(tmp_path / "work"),
    }
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatcher", env=env)


async def test_sigterm_serves_on_not_ready_for_the_delay_then_stops(
    tmp_path: pathlib.Path, redis_url: str
) -> None:
    port = redisproc.free_port()
    server = await _serve(tmp_path, redis_url, port)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        await wait_until_ready(http)
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        server.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        async with http.get("/readyz") as response:
            assert response.status == 503  # the endpoints should drop it...
            assert (await response.json()) == {"draining": True}
        async with http.post("/v1/evaluations", json={"code": "print(1)"}) as response:
            assert response.status == 201  # ...while what still comes is served
        assert await asyncio.wait_for(server.wait(), 30) == 0
        assert loop.time() - signalled >= 1.5


async def test_sigint_stops_at_once(tmp_path: pathlib.Path, redis_url: str) -> None:
    port = redisproc.free_port()
    server = await _serve(tmp_path, redis_url, port)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        await wait_until_ready(http)
    loop = asyncio.get_running_loop()
    signalled = loop.time()
    server.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(server.wait(), 30) == 0
    assert loop.time() - signalled < 1.5
