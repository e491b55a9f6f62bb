"""``crucible serve`` on a laptop: no Redis URL, so it runs its own, and takes it down on exit."""

import asyncio
import os
import pathlib
import signal
import sys

import aiohttp
import pytest

from tests import redisproc
from tests.integration.pipeline.harness import eventually, wait_until_ready

pytestmark = pytest.mark.integration


async def test_serve_without_a_redis_url_runs_evaluations_on_its_embedded_redis(
    tmp_path: pathlib.Path,
) -> None:
    port = redisproc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {"CRUCIBLE_PORT": str(port), "CRUCIBLE_DATA_DIR": str(tmp_path / "redis")}
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatcher", env=env)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await wait_until_ready(http)
            async with http.post("/v1/evaluations", json={"code": "print(6 * 7)"}) as response:
                assert response.status == 201
                eval_id = (await response.json())["eval_id"]

            async def completed() -> bool:
                async with http.get(f"/v1/evaluations/{eval_id}") as response:
                    record = await response.json()
                    return bool(record["status"] == "completed" and record["output"] == "42\n")

            await eventually(completed)
        assert (tmp_path / "redis" / "appendonlydir").is_dir()
        redis_pid = embedded_server_pid(tmp_path / "redis")
    finally:
        server.send_signal(signal.SIGTERM)
        await server.wait()
    assert server.returncode == 0
    await eventually(lambda: not pathlib.Path(f"/proc/{redis_pid}").exists())


def embedded_server_pid(directory: pathlib.Path) -> int:
    """The valkey-server working in ``directory`` (it changes into its ``--dir``; its command
    line is rewritten to a title, so that cannot say)."""
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() == "valkey-server" and (
                proc / "cwd"
            ).readlink() == directory:
                return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no server working in {directory}")
