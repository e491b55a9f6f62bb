"""The scripts go out as EVALSHA alone; a Redis that lost them (restart, SCRIPT FLUSH) gets them
loaded again and loses no command, in pipelines and alone."""

import time

import pytest
import redis.asyncio

from dispatcher.store import lua
from dispatcher.store.publish import Publisher
from dispatcher.store.records import Record, Resources, Status
from dispatcher.store.store import Store
from wire import events

pytestmark = pytest.mark.integration


def _record(eval_id: str) -> Record:
    return Record(
        eval_id=eval_id, status=Status.ACCEPTED, backend="local", image="python",
        command=["python", "-c", "pass"], timeout_seconds=5.0,
        resources=Resources(cpu="1", memory="1Gi"), labels={}, created_at=time.time(),
        request_digest="0" * 64,
    )  # fmt: skip


async def test_a_flushed_script_cache_is_refilled_and_every_command_runs(
    redis_client: redis.asyncio.Redis,
) -> None:
    store, publisher = Store(redis_client, ttl_seconds=60), Publisher(redis_client)
    await redis_client.script_flush()
    accepted = events.Event(eval_id="lua-1", type="accepted", source="dispatcher")
    assert await store.create(_record("lua-1"), then=lambda p: publisher.queue(p, accepted)) is None
    assert await redis_client.script_exists(lua.CREATE_RECORD.sha, lua.PUBLISH.sha) == [True, True]

    await redis_client.script_flush()
    running = events.Event(eval_id="lua-1", type="running", source="sidecar")
    done = events.Event(eval_id="lua-1", type="completed", source="sidecar", exit_code=0)
    published = await publisher.publish_many([(running, "r"), (done, "d")])
    assert [p.seq for p in published] == [2, 3]  # in their order, after `accepted`

    await redis_client.script_flush()
    assert await store.apply(running.model_copy(update={"seq": 2})) is True
    assert (await store.require("lua-1")).status is Status.RUNNING


async def test_a_pipeline_sends_no_script_exists(redis_client: redis.asyncio.Redis) -> None:
    publisher = Publisher(redis_client)
    event = events.Event(eval_id="lua-2", type="accepted", source="dispatcher")
    await publisher.publish(event, token="warm")  # loads the script once
    before = await _calls(redis_client, "script|exists")
    for i in range(5):
        await publisher.publish_many([(event, f"t{i}")])
    assert await _calls(redis_client, "script|exists") == before


async def _calls(client: redis.asyncio.Redis, command: str) -> int:
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
