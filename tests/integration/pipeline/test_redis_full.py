"""Redis at ``maxmemory`` (it refuses writes): new work gets 503 with Retry-After and nothing is
created, and an evaluation already accepted is not lost: its events and verdict land once Redis
takes writes again. Local backend, real processes, a real Redis."""

import asyncio

import pytest
import redis.asyncio

from tests import redis_mode
from tests.integration.pipeline.harness import DispatcherFactory
from tests.redis_mode import SPACE

pytestmark = pytest.mark.integration


@redis_mode.one_server_only
async def test_a_full_redis_refuses_new_work_and_loses_no_accepted_evaluation(
    make_dispatcher: DispatcherFactory, redis_url: str, redis_client: redis.asyncio.Redis
) -> None:
    dispatcher = await make_dispatcher(redis_url)
    code = "import time\nprint('before', flush=True)\ntime.sleep(1.5)\nprint('after')"
    await dispatcher.submit(code=code, eval_id="through-full")
    await dispatcher.wait_for("through-full", lambda r: r["status"] == "running")
    await redis_client.config_set("maxmemory", "1")
    try:
        refused = await dispatcher.http.post("/v1/evaluations", json={"code": "1", "eval_id": "n"})
        assert refused.status == 503, await refused.text()
        assert refused.headers["Retry-After"] == "1"
        await asyncio.sleep(2.5)  # the evaluation ends while Redis refuses its events
    finally:
        await redis_client.config_set("maxmemory", "0")
    assert not await redis_client.exists(SPACE.record("n"))
    record = await dispatcher.wait_ended("through-full")
    assert (record["status"], record["exit_code"]) == ("completed", 0), record
    assert record["output"] == "before\nafter\n"
