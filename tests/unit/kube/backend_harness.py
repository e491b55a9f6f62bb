"""Helpers of the tests that run the Kubernetes backend against a real Redis and the fake API
server (kube_fake_api); the fixtures are in conftest.py."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio

from dispatcher.backends import base
from dispatcher.backends.kube.backend import KubernetesBackend
from dispatcher.store import records
from tests.redis_mode import SPACE
from tests.unit.kube.kube_fake_api import FakeKubeAPI
from wire import events, keys

Make = Callable[..., Awaitable[KubernetesBackend]]


def submission(eval_id: str = "eval-1", **overrides: Any) -> base.Submission:
    fields: dict[str, Any] = {
        "eval_id": eval_id,
        "command": ["python", "-c", "print('hi')"],
        "image": "python:3.12-slim",
        "timeout_seconds": 30.0,
        "resources": records.Resources(cpu="500m", memory="256Mi"),
        "env": {"A": "1"},
        "labels": {"team": "ml"},
    }
    fields.update(overrides)
    return base.Submission(**fields)


async def wait_event(
    client: redis.asyncio.Redis,
    eval_id: str,
    predicate: Callable[[events.Event], bool],
    within: float = 10.0,
) -> events.Event:
    """The first event of ``eval_id`` that satisfies ``predicate`` (XREAD blocks, no sleeps)."""
    last = "0"
    async with asyncio.timeout(within):
        while True:
            reply = await client.xread({SPACE.eval_stream(eval_id): last}, block=500)
            for _, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    event = events.parse(fields[keys.EVENT_FIELD.encode()])
                    if predicate(event):
                        return event


async def all_events(client: redis.asyncio.Redis, eval_id: str) -> list[events.Event]:
    entries = await client.xrange(SPACE.eval_stream(eval_id))
    return [events.parse(fields[keys.EVENT_FIELD.encode()]) for _, fields in entries]


async def launched(
    backend: KubernetesBackend,
    fake_api: FakeKubeAPI,
    redis_client: redis.asyncio.Redis,
    evaluation: base.Submission | None = None,
) -> dict[str, Any]:
    """Submit, wait until the admitter created the Job (``scheduled``), return the Job."""
    evaluation = evaluation or submission()
    scheduled = await backend.submit(evaluation)
    await wait_event(redis_client, evaluation.eval_id, lambda e: e.type == "scheduled")
    job: dict[str, Any] = fake_api.objects["jobs"][scheduled.job_name]
    return job
