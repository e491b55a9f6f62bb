"""The consumer group that feeds the status store: restarts, several dispatchers, Redis outages."""

import asyncio
import logging
import time
from typing import Any

import pytest
import redis.asyncio

from dispatcher import metrics
from dispatcher.api.app import create_app
from dispatcher.store import connect, records, store
from dispatcher.store.consumer import Consumer
from tests import redisproc
from tests.integration.dispatcher.conftest import (
    AppClient,
    FakeBackend,
    make_settings,
    publish,
    record_with,
    wait_for,
)
from tests.redis_mode import SPACE
from wire import keys

pytestmark = pytest.mark.integration


def a_record(eval_id: str) -> records.Record:
    return records.Record(
        eval_id=eval_id,
        status=records.Status.ACCEPTED,
        backend="fake",
        image="python:3.11-slim",
        command=["true"],
        timeout_seconds=5,
        resources=records.Resources(cpu="1", memory="64Mi"),
        created_at=time.time(),
        request_digest="d",
    )


@pytest.fixture
def start(aiohttp_client: Any, redis_client: redis.asyncio.Redis, redis_url: str) -> Any:
    async def start_app(
        client: redis.asyncio.Redis | None = None, url: str | None = None, **settings: Any
    ) -> AppClient:
        app = create_app(
            make_settings(url or redis_url, **settings),
            FakeBackend(),
            client or redis_client,
            registry=metrics.Registry(),
        )
        started: AppClient = await aiohttp_client(app)
        return started

    return start_app


async def test_events_published_while_no_dispatcher_runs_are_applied_on_start(
    start: Any, redis_client: redis.asyncio.Redis
):
    first = await start()
    await first.post("/v1/evaluations", json={"code": "1", "eval_id": "gap"})
    await first.close()
    await publish(redis_client, "gap", "running", started_at=3.0)
    await publish(redis_client, "gap", "completed", exit_code=0, output="ok")
    second = await start()
    record = await record_with(second, "gap", status="completed")
    assert (record["started_at"], record["output"]) == (3.0, "ok")


async def test_events_from_before_the_group_existed_are_applied(
    start: Any, redis_client: redis.asyncio.Redis
):
    await store.Store(redis_client, ttl_seconds=60).create(a_record("early"))
    await publish(redis_client, "early", "failed", exit_code=2)
    api = await start()
    await record_with(api, "early", status="failed", exit_code=2)


async def test_two_dispatchers_share_the_stream_and_apply_each_event_once(
    start: Any, redis_client: redis.asyncio.Redis
):
    apis = [await start(), await start()]
    ids = [f"two{i}" for i in range(20)]
    for i, eval_id in enumerate(ids):
        await apis[i % 2].post("/v1/evaluations", json={"code": "1", "eval_id": eval_id})
        await publish(redis_client, eval_id, "completed", exit_code=i)
    for i, eval_id in enumerate(ids):
        await record_with(apis[(i + 1) % 2], eval_id, status="completed", exit_code=i)

    streams = [SPACE.global_stream(p) for p in SPACE.all_partitions()]

    async def all_acknowledged() -> bool:
        for stream in streams:
            pending = await redis_client.xpending(stream, keys.CONSUMER_GROUP)
            if pending["pending"]:
                return False
        return True

    await wait_for(all_acknowledged, what="every entry acknowledged")
    groups = [(await redis_client.xinfo_groups(stream))[0] for stream in streams]
    assert {group["consumers"] for group in groups} == {2}
    # 20 accepted + 20 completed, each delivered once
    assert sum(group["entries-read"] or 0 for group in groups) == 40


async def test_entries_left_pending_by_a_dead_dispatcher_are_claimed(
    start: Any, redis_client: redis.asyncio.Redis
):
    await store.Store(redis_client, ttl_seconds=60).create(a_record("orphan"))
    stream = SPACE.global_stream(SPACE.partition("orphan"))
    await redis_client.xgroup_create(stream, keys.CONSUMER_GROUP, id="0", mkstream=True)
    await publish(redis_client, "orphan", "completed", exit_code=5)
    # A dispatcher that read the entry and died before acknowledging it.
    await redis_client.xreadgroup(keys.CONSUMER_GROUP, "dead", {stream: ">"})
    api = await start(
        consumer={"claim_idle_seconds": 0.05, "claim_interval_seconds": 0.1, "block_seconds": 0.05}
    )
    await record_with(api, "orphan", status="completed", exit_code=5)


async def test_a_deleted_group_is_recreated(start: Any, redis_client: redis.asyncio.Redis):
    api = await start()
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "nogroup"})
    await record_with(api, "nogroup", status="accepted")
    stream = SPACE.global_stream(SPACE.partition("nogroup"))
    await redis_client.xgroup_destroy(stream, keys.CONSUMER_GROUP)
    await publish(redis_client, "nogroup", "completed", exit_code=0)
    await record_with(api, "nogroup", status="completed")


async def test_redis_restart_is_survived(start: Any, restartable_redis: redisproc.RedisProcess):
    client = connect.connect(restartable_redis.url)
    try:
        api = await start(
            client=client,
            url=restartable_redis.url,
            consumer={"block_seconds": 0.05, "backoff_max_seconds": 0.2},
        )
        await api.post("/v1/evaluations", json={"code": "1", "eval_id": "survivor"})
        restartable_redis.kill()
        restartable_redis.start()
        await publish(client, "survivor", "completed", exit_code=0)
        await record_with(api, "survivor", status="completed")
        await api.close()
    finally:
        await client.aclose()


async def test_requests_while_redis_is_down_are_503_json_not_500(
    start: Any, restartable_redis: redisproc.RedisProcess
):
    client = connect.connect(restartable_redis.url)
    try:
        api = await start(client=client, url=restartable_redis.url)
        restartable_redis.kill()
        response = await api.post("/v1/evaluations", json={"code": "1"})
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "redis_unavailable"
        ready = await api.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["redis"] is False
        restartable_redis.start()
        assert (await api.post("/v1/evaluations", json={"code": "1"})).status == 201
        await api.close()
    finally:
        await client.aclose()


async def test_a_stop_ends_every_loop_before_it_returns_even_one_that_lost_its_cancel(
    redis_client: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
):
    """A loop left running after the stop would use a client its owner closes next (the
    cluster pass saw such a read fail as "redis unavailable" and its connection leak)."""
    consumer = Consumer(
        redis_client,
        store.Store(redis_client, ttl_seconds=60),
        make_settings("redis://unused").consumer,
    )
    await consumer.ensure_group()
    follow = consumer._follow
    lost: list[str] = []

    async def follow_losing_one_cancel(stream: str) -> None:
        # However the read ends (its cancel, or the closed pool after redis-py lost that
        # cancel), the first loop to end reads on a while, as one whose cancel was lost does.
        try:
            await follow(stream)
        except asyncio.CancelledError:
            if lost:
                raise
            current = asyncio.current_task()
            assert current is not None
            current.uncancel()
        if not lost:
            lost.append(stream)
            await asyncio.sleep(0.3)

    consumer._follow = follow_losing_one_cancel  # type: ignore[method-assign]
    before = asyncio.all_tasks()
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.2)  # every loop is in its blocking read
    await consumer.stop(task)
    assert lost, "no loop ended"
    assert [t.get_name() for t in asyncio.all_tasks() - before if not t.done()] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
