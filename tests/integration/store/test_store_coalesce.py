"""Creations that arrive in the same turn of the event loop share one round trip
(``dispatcher.store.coalesce``): each caller still gets its own answer, its own failure and its
own undo, and a Redis that lost its scripts loses none of them."""

import asyncio
import time

import pytest
import redis.asyncio
import redis.exceptions
from redis.asyncio.client import Pipeline

from dispatcher.store.layout import QueueEntry
from dispatcher.store.records import Record, Resources, Status
from dispatcher.store.store import Store
from tests.redis_mode import SPACE, inflight_of

pytestmark = pytest.mark.integration


def _record(eval_id: str, digest: str = "0" * 64) -> Record:
    return Record(
        eval_id=eval_id, status=Status.ACCEPTED, backend="local", image="python",
        command=["python", "-c", "pass"], timeout_seconds=5.0,
        resources=Resources(cpu="1", memory="1Gi"), labels={}, created_at=time.time(),
        request_digest=digest,
    )  # fmt: skip


async def test_a_burst_shares_one_round_trip_and_each_caller_gets_its_answer(
    redis_client: redis.asyncio.Redis,
) -> None:
    store = Store(redis_client, ttl_seconds=60)
    assert await store.create(_record("old", digest="a" * 64)) is None
    await redis_client.script_flush()  # the batch meets NOSCRIPT and is sent again
    clients_before = (await redis_client.info("stats"))["total_connections_received"]
    answers = await asyncio.gather(
        *(store.create(_record(f"burst-{i}")) for i in range(20)),
        store.create(_record("old", digest="b" * 64)),
    )
    assert answers == [None] * 20 + ["a" * 64]
    for i in range(20):
        assert (await store.require(f"burst-{i}")).status is Status.ACCEPTED
    # One pipeline for the 21 creations: at most one more connection than the warm-up's.
    assert (await redis_client.info("stats"))["total_connections_received"] - clients_before <= 1


async def test_a_failing_command_undoes_its_own_creation_only(
    redis_client: redis.asyncio.Redis,
) -> None:
    store = Store(redis_client, ttl_seconds=60)
    await redis_client.set("not-a-hash", "x")
    entry = QueueEntry(inflight_of("bad"), "bad", "me")

    def fails(pipe: Pipeline) -> None:
        pipe.hset("not-a-hash", "f", "v")  # WRONGTYPE

    results = await asyncio.gather(
        store.create(_record("good")),
        store.create(_record("bad"), then=fails, entry=entry),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], redis.exceptions.ResponseError)
    assert await redis_client.exists(SPACE.record("good"))
    assert not await redis_client.exists(SPACE.record("bad"))
    assert not await redis_client.hexists(inflight_of("bad"), "bad")  # type: ignore[misc]


async def test_the_queue_entry_is_written_only_by_the_creation(
    redis_client: redis.asyncio.Redis,
) -> None:
    store = Store(redis_client, ttl_seconds=60)
    first = QueueEntry(inflight_of("once"), "once", "first holder")
    again = QueueEntry(inflight_of("once"), "once", "second holder")
    assert await store.create(_record("once"), entry=first) is None
    assert await store.create(_record("once"), entry=again) == "0" * 64
    holder = await redis_client.hget(inflight_of("once"), "once")  # type: ignore[misc]
    assert holder == b"first holder"


async def test_a_lost_connection_fails_every_caller_of_its_batch() -> None:
    client = redis.asyncio.Redis(port=1, socket_connect_timeout=0.5)
    store = Store(client, ttl_seconds=60)
    results = await asyncio.gather(
        *(store.create(_record(f"gone-{i}")) for i in range(3)), return_exceptions=True
    )
    assert len(results) == 3
    assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results)
    await client.aclose()
