"""``crucible serve`` (local backend) as its own process, as a user runs it, for the local
benchmarks: started on a Redis the benchmark chooses, ready before the first request, ended
with the benchmark."""

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from dispatcher.embedded_redis import EmbeddedRedis, free_port


@contextlib.contextmanager
def serve(redis_url: str, **settings: str) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """The server on ``redis_url`` with ``settings`` (``CRUCIBLE_*`` variables): (its URL, its
    process). Not yet ready: await ``wait_ready``."""
    port = free_port()
    env = {
        **os.environ,
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_LOG_LEVEL": "WARNING",
        **settings,
    }
    server = subprocess.Popen([sys.executable, "-m", "dispatcher"], env=env)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(30)


@contextlib.contextmanager
def serving(**settings: str) -> Iterator[tuple[str, "subprocess.Popen[bytes]", str]]:
    """``serve`` on a Redis and a work root of its own: (its URL, its process, the Redis URL)."""
    with (
        tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis_server,
        serve(redis_server.url, CRUCIBLE_LOCAL__WORK_ROOT=str(Path(tmp) / "work"), **settings) as (
            base,
            server,
        ),
    ):
        yield base, server, redis_server.url


async def wait_ready(
    session: aiohttp.ClientSession, base: str, server: "subprocess.Popen[bytes]"
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("crucible serve exited; see its log above")
        try:
            async with session.get(f"{base}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("crucible serve not ready within 60s")
