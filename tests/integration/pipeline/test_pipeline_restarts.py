"""Nothing is lost when Redis or the dispatcher restarts while evaluations run."""

import asyncio
import pathlib

import pytest
import redis.asyncio

from dispatcher.records import Status
from dispatcher.store import Store
from tests import redisproc
from tests.integration.pipeline.conftest import DispatcherFactory, eventually

pytestmark = pytest.mark.integration

# Runs until the test creates ``go`` in its working directory, then prints and ends.
WAIT_CODE = """
import os, sys, time
while not os.path.exists('go'):
    time.sleep(0.01)
print('done', sys.argv[0])
"""
COUNT = 4


def work_dirs(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted((root / "runs").glob("*-*"))


def let_them_finish(root: pathlib.Path) -> None:
    for work_dir in work_dirs(root):
        (work_dir / "go").touch()


async def test_redis_killed_and_restarted_loses_no_end(
    restartable_redis: redisproc.RedisProcess,
    make_dispatcher: DispatcherFactory,
    tmp_path: pathlib.Path,
) -> None:
    dispatcher = await make_dispatcher(restartable_redis.url, work_root=str(tmp_path))
    ids = [f"redis-restart-{i}" for i in range(COUNT)]
    for eval_id in ids:
        await dispatcher.submit(code=WAIT_CODE, eval_id=eval_id)
    for eval_id in ids:
        await dispatcher.wait_for(eval_id, lambda r: r["status"] == "running")

    restartable_redis.kill()
    # They end while Redis is down: every terminal event has to wait for it.
    let_them_finish(tmp_path)
    await eventually(lambda: all((d / "state" / "exit.json").exists() for d in work_dirs(tmp_path)))
    restartable_redis.start()

    for eval_id in ids:
        record = await dispatcher.wait_ended(eval_id)
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert record["output"] == "done -c\n"


async def test_dispatcher_restarted_while_evaluations_run(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    first = await make_dispatcher(redis_url, work_root=str(tmp_path), drain_seconds=60)
    ids = [f"dispatcher-restart-{i}" for i in range(COUNT)]
    for eval_id in ids:
        await first.submit(code=WAIT_CODE, eval_id=eval_id)
    for eval_id in ids:
        await first.wait_for(eval_id, lambda r: r["status"] == "running")

    # Stopping: the consumer goes first, then the backend drains (not ready any more).
    backend = first.backend
    assert backend is not None
    stopping = asyncio.create_task(first.stop())
    await eventually(lambda: not stopping.done() and backend_closing(backend))
    # The evaluations end while no dispatcher consumes events.
    let_them_finish(tmp_path)
    await stopping

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        store = Store(client, ttl_seconds=3600)
        for eval_id in ids:
            record = await store.get(eval_id)
            assert record is not None
            assert record.status == Status.RUNNING  # nobody has applied the ends yet
    finally:
        await client.aclose()

    second = await make_dispatcher(redis_url)
    for eval_id in ids:
        record = await second.wait_ended(eval_id)
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert record["output"] == "done -c\n"


async def backend_closing(backend: object) -> bool:
    ready = getattr(backend, "ready")  # noqa: B009 - the Backend protocol's readiness
    return not await ready()
