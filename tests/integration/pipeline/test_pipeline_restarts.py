"""Nothing is lost when Redis or the dispatcher restarts while evaluations run."""

import asyncio
import os
import pathlib
import sys

import aiohttp
import pytest

from dispatcher.store.records import Status
from dispatcher.store.store import Store
from tests import redis_mode, redisproc
from tests.integration.pipeline.harness import (
    TERMINAL,
    DispatcherFactory,
    eventually,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

# Notes its pid, runs until the test creates ``go`` in its working directory, then prints and
# ends.
WAIT_CODE = """
import os, sys, time
with open('pid.new', 'w') as f:
    f.write(str(os.getpid()))
os.replace('pid.new', 'pid')
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


def user_pids(root: pathlib.Path) -> list[int]:
    """The pids WAIT_CODE noted (once it runs)."""
    return [int(noted.read_text()) for noted in sorted((root / "runs").glob("*/pid"))]


@redis_mode.one_server_only
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
    await eventually(lambda: len(user_pids(tmp_path)) == COUNT)
    pids = user_pids(tmp_path)
    let_them_finish(tmp_path)
    await eventually(lambda: all(process_gone(pid) for pid in pids))
    restartable_redis.start()

    for eval_id in ids:
        record = await dispatcher.wait_ended(eval_id)
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert record["output"] == "done -\n"  # the program came on stdin


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

    client = redis_mode.client(redis_url)
    try:
        store = Store(client, ttl_seconds=3600)
        for eval_id in ids:
            stored = await store.get(eval_id)
            assert stored is not None
            assert stored.status == Status.RUNNING  # nobody has applied the ends yet
    finally:
        await client.aclose()

    second = await make_dispatcher(redis_url)
    for eval_id in ids:
        record = await second.wait_ended(eval_id)
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert record["output"] == "done -\n"  # the program came on stdin


async def backend_closing(backend: object) -> bool:
    ready = getattr(backend, "ready")  # noqa: B009 - the Backend protocol's readiness
    return not await ready()


async def test_a_dispatcher_that_dies_takes_its_evaluations_along(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    """``crucible serve`` killed with SIGKILL: its evaluations die with it (parent-death
    signal), and the next dispatcher on the same Redis ends their records."""
    port = redisproc.free_port()
    env = {
        **os.environ,
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_REDIS_CLUSTER": str(redis_mode.CLUSTER).lower(),
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_LOCAL__WORK_ROOT": str(tmp_path),
    }
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "dispatcher", env=env)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await wait_until_ready(http)
            body = {"code": WAIT_CODE, "eval_id": "orphan"}
            async with http.post("/v1/evaluations", json=body) as response:
                assert response.status == 201

            async def running() -> bool:
                async with http.get("/v1/evaluations/orphan") as response:
                    return bool((await response.json())["status"] == "running")

            await eventually(running)
        await eventually(lambda: len(user_pids(tmp_path)) == 1)
        (child,) = user_pids(tmp_path)
    finally:
        server.kill()
        await server.wait()

    await eventually(lambda: process_gone(child))
    successor = await make_dispatcher(redis_url)
    record = await successor.wait_for("orphan", lambda r: r["status"] in TERMINAL)
    # Either the sidecar drained in time (the SIGTERM'd child, 143) or nobody could: lost.
    assert (record["status"], record["exit_code"]) == ("failed", 143) or (
        record["status"] == "error" and record["reason"].startswith("lost")
    ), record


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purposes
            return f.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True  # reaped between the two looks


async def test_stopping_the_dispatcher_cancels_what_it_holds(
    make_dispatcher: DispatcherFactory, redis_url: str, tmp_path: pathlib.Path
) -> None:
    dispatcher = await make_dispatcher(redis_url, work_root=str(tmp_path), concurrency=2)
    for i in range(3):  # two run, one waits in the queue
        await dispatcher.submit(code=WAIT_CODE, eval_id=f"held-{i}")
    for i in range(2):
        await dispatcher.wait_for(f"held-{i}", lambda r: r["status"] == "running")
    await eventually(lambda: len(user_pids(tmp_path)) == 2)
    children = user_pids(tmp_path)

    await dispatcher.stop()

    assert all(process_gone(pid) for pid in children)
    # Work dirs and private dirs removed.
    assert list((tmp_path / "runs").iterdir()) == list((tmp_path / "run").iterdir()) == []
    successor = await make_dispatcher(redis_url)
    for i in range(3):
        record = await successor.wait_ended(f"held-{i}")
        assert record["status"] == "cancelled"
        assert record["reason"].startswith("DispatcherShutdown")
