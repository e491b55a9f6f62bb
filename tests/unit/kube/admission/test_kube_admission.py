"""The admission queue on a real Redis, and the backend admitting through it (fake API server).

The queue's order is round robin over the tenants; its limits hold across replicas because each
step is one script; an end frees a slot in the script that records the end."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from dispatcher import errors, settings
from dispatcher.backends.kube.admission.queue import AdmissionQueue, Admitted, Limits
from dispatcher.backends.kube.jobs import names
from dispatcher.store import publish, records
from dispatcher.store.consumer import Consumer
from dispatcher.store.store import Store
from tests.redis_mode import SPACE
from tests.unit.kube.backend_harness import Make, launched, submission, wait_event
from tests.unit.kube.kube_fake_api import FakeKubeAPI
from wire import events, keys


def queue(
    client: redis.asyncio.Redis, max_running: int = 0, max_queued: int = 0, **caps: int
) -> AdmissionQueue:
    limits = Limits(max_running, max_queued, (caps.pop("default", 0), caps))
    return AdmissionQueue(client, limits)


async def record(store: Store, eval_id: str) -> None:
    await store.create(
        records.Record(
            eval_id=eval_id,
            status=records.Status.ACCEPTED,
            backend="kubernetes",
            image="python",
            command=["true"],
            timeout_seconds=5,
            resources=records.Resources(cpu="1", memory="1Gi"),
            created_at=time.time(),
            request_digest="d",
        )
    )


async def end(store: Store, publisher: publish.Publisher, eval_id: str) -> None:
    """Publish and apply an end, as the consumer would."""
    event = events.Event(eval_id=eval_id, type=events.EventType.COMPLETED, source="sidecar")
    await publisher.publish(event, token="end")
    await store.sync(eval_id)


def ids(taken: list[Admitted]) -> list[str]:
    return [a.submission.eval_id for a in taken]


async def test_tenants_are_served_round_robin_and_positions_say_so(
    redis_client: redis.asyncio.Redis,
) -> None:
    q = queue(redis_client)
    given = {}
    for eval_id in ("a~1", "a~2", "a~3", "b~1", "c~1", "c~2"):
        given[eval_id] = await q.enqueue(submission(eval_id))
    # When queued: a's three were 1, 2, 3; b~1 is served after a~1; c~2 in the second round.
    assert given == {"a~1": 1, "a~2": 2, "a~3": 3, "b~1": 2, "c~1": 3, "c~2": 5}
    now = {eval_id: await q.position(eval_id) for eval_id in given}
    assert now == {"a~1": 1, "b~1": 2, "c~1": 3, "a~2": 4, "c~2": 5, "a~3": 6}
    taken = await q.admit(10)
    assert ids(taken) == ["a~1", "b~1", "c~1", "a~2", "c~2", "a~3"]
    assert taken[0].submission == submission("a~1")  # the whole submission comes back
    assert await q.depth() == (0, 6)
    assert await redis_client.llen(keys.QUEUE_TURNS) == 0  # type: ignore[misc]
    assert await redis_client.hlen(keys.QUEUE_SPECS) == 0  # type: ignore[misc]


async def test_no_more_than_max_running_and_an_end_frees_a_slot(
    redis_client: redis.asyncio.Redis,
) -> None:
    store = Store(redis_client, ttl_seconds=60)
    publisher = publish.Publisher(redis_client)
    q = queue(redis_client, max_running=2)
    for eval_id in ("x~1", "x~2", "x~3"):
        await record(store, eval_id)
        await q.enqueue(submission(eval_id))
    assert ids(await q.admit(10)) == ["x~1", "x~2"]
    assert await q.admit(10) == []
    await end(store, publisher, "x~1")
    assert ids(await q.admit(10)) == ["x~3"]
    assert await q.depth() == (0, 2)


async def test_a_tenant_at_its_cap_waits_and_the_others_go_on(
    redis_client: redis.asyncio.Redis,
) -> None:
    q = queue(redis_client, greedy=1)
    for eval_id in ("greedy~1", "greedy~2", "other~1", "other~2"):
        await q.enqueue(submission(eval_id))
    assert ids(await q.admit(10)) == ["greedy~1", "other~1", "other~2"]
    assert await q.position("greedy~2") == 1


async def test_a_full_queue_refuses_and_writes_nothing(redis_client: redis.asyncio.Redis) -> None:
    q = queue(redis_client, max_queued=2)
    await q.enqueue(submission("t~1"))
    await q.enqueue(submission("t~2"))
    assert await q.enqueue(submission("t~2")) == 2  # a retry of a queued one is no newcomer
    with pytest.raises(errors.QueueFullError) as refused:
        await q.enqueue(submission("t~3"))
    assert refused.value.retry_after_seconds > 0
    assert await q.depth() == (2, 0)
    assert await redis_client.hexists(keys.QUEUE_SPECS, "t~3") == 0  # type: ignore[misc]


async def test_withdrawn_evaluations_leave_no_trace_and_requeued_ones_go_first(
    redis_client: redis.asyncio.Redis,
) -> None:
    q = queue(redis_client)
    for eval_id in ("a~1", "a~2", "b~1"):
        await q.enqueue(submission(eval_id))
    assert await q.withdraw("b~1") is True
    assert await q.withdraw("b~1") is False
    assert await redis_client.lrange(keys.QUEUE_TURNS, 0, -1) == [b"a"]  # type: ignore[misc]
    (first,) = await q.admit(1)
    await q.enqueue(submission("b~2"))
    await q.requeue(first)  # its Job could not be created: it is next again
    assert await q.depth() == (3, 0)
    assert ids(await q.admit(10)) == ["a~1", "b~2", "a~2"]


async def test_slots_of_ended_or_vanished_evaluations_are_found(
    redis_client: redis.asyncio.Redis,
) -> None:
    store = Store(redis_client, ttl_seconds=60)
    q = queue(redis_client)
    await record(store, "s~live")
    await record(store, "s~ended")
    for eval_id in ("s~live", "s~ended", "s~vanished"):
        await q.enqueue(submission(eval_id))
    await q.admit(10)
    # An end recorded while the slot could not be freed (as after a lost Redis write).
    await redis_client.hset(SPACE.record("s~ended"), "status", '"completed"')  # type: ignore[misc]
    stale = await q.stale()
    assert sorted(stale) == ["s~ended", "s~vanished"]
    await q.release(stale)
    assert await q.depth() == (0, 1)


@contextlib.asynccontextmanager
async def consuming(
    redis_client: redis.asyncio.Redis, store: Store, backend: Any
) -> AsyncIterator[None]:
    """The status store fed from the stream while inside; every loop ended at the exit."""
    consumer = Consumer(
        redis_client, store, settings.ConsumerConfig(), on_end=backend.evaluation_ended
    )
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        await consumer.stop(task)


async def test_the_backend_starts_the_next_as_soon_as_one_ends(
    make_backend: Make, fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis
) -> None:
    # A tick far longer than the test: only the end's wake-up can start the second.
    backend = await make_backend(max_running=1, admission_tick_seconds=600)
    store = Store(redis_client, ttl_seconds=60)
    async with consuming(redis_client, store, backend):
        for eval_id in ("q~1", "q~2", "q~3"):
            await record(store, eval_id)
        first = await launched(backend, fake_api, redis_client, submission("q~1"))
        await backend.submit(submission("q~2"))
        await backend.submit(submission("q~3"))
        queued = await wait_event(redis_client, "q~3", lambda e: e.type == "queued")
        assert queued.position == 2
        assert await backend.queue_position("q~3") == 2
        await asyncio.sleep(0.2)
        assert list(fake_api.objects["jobs"]) == [first["metadata"]["name"]]
        # Cancelled while queued: it leaves the queue, no Job is ever made for it.
        assert await backend.cancel("q~3") is True
        assert await backend.queue_position("q~3") is None
        await fake_api.put_pod(first, _terminated())
        await wait_event(redis_client, "q~2", lambda e: e.type == "scheduled")
        assert names.job_name("q~2") in fake_api.objects["jobs"]
        await asyncio.sleep(0.2)
        assert names.job_name("q~3") not in fake_api.objects["jobs"]


def _terminated() -> dict[str, Any]:
    return {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "evaluation",
                "ready": False,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": "2026-01-01T00:00:01Z",
                        "finishedAt": "2026-01-01T00:00:03Z",
                    }
                },
            }
        ],
    }
