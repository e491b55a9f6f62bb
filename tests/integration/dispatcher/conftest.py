"""Dispatcher API fixtures: the real app on a real Redis, with the real local backend or, for
tests that only look at the API's side, a fake at the backend boundary."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatcher import errors
from dispatcher.api.app import create_app
from dispatcher.api.ingest import SidecarLink
from dispatcher.backends import base
from dispatcher.backends.local.backend import LocalBackend
from dispatcher.backends.local.config import LocalConfig
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records
from dispatcher.store.publish import Publisher
from tests import redis_mode, redisproc
from wire import events


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration/dispatcher" in str(item.path):
            item.add_marker(pytest.mark.integration)


class FakeBackend:
    """A fake at the backend boundary: records what it is given and runs nothing. Tests make it
    refuse work (``refuse``) or stand in for a backend's events by publishing themselves."""

    name = "fake"

    def __init__(self) -> None:
        self.submitted: list[base.Submission] = []
        self.cancelled: list[str] = []
        self.ended: list[str] = []
        self.an_end = asyncio.Event()
        self.positions: dict[str, int] = {}
        self.refuse: Exception | None = None
        self.is_ready = True
        self.started = self.closed = False

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def submit(self, submission: base.Submission) -> base.Scheduled:
        if self.refuse is not None:
            raise self.refuse
        self.submitted.append(submission)
        return base.Scheduled(job_name=f"fake-{submission.eval_id}")

    async def cancel(self, eval_id: str) -> bool:
        self.cancelled.append(eval_id)
        return True

    async def ready(self) -> bool:
        return self.is_ready

    def evaluation_ended(self, eval_id: str) -> None:
        self.ended.append(eval_id)
        self.an_end.set()

    async def queue_position(self, eval_id: str) -> int | None:
        return self.positions.get(eval_id)


def queue_full() -> errors.QueueFullError:
    return errors.QueueFullError("full", retry_after_seconds=7)


@pytest.fixture
def settings(redis_url: str) -> DispatcherSettings:
    return make_settings(redis_url)


def make_settings(redis_url: str, **overrides: Any) -> DispatcherSettings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_cluster": redis_mode.CLUSTER,
        "sse_heartbeat_seconds": 0.2,
        "sse_verify_wait_seconds": 1.0,
        "consumer": {"block_seconds": 0.1, "claim_interval_seconds": 0.5},
        **overrides,
    }
    return DispatcherSettings(**values)


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


AppClient = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[AppClient]]


@pytest.fixture
async def api(
    redis_client: Any, aiohttp_client: Any, settings: DispatcherSettings, fake_backend: FakeBackend
) -> AppClient:
    """The API with the fake backend. (The Redis client is requested first so that it is
    closed after the app has stopped.)"""
    client: AppClient = await aiohttp_client(create_app(settings, fake_backend, redis_client))
    return client


@pytest.fixture
async def local_api(
    redis_client: redis.asyncio.Redis, aiohttp_client: Any, redis_url: str, tmp_path: Any
) -> Callable[..., Awaitable[AppClient]]:
    """Factory: the API with the real local backend (``LocalConfig`` overrides as kwargs,
    other settings as ``settings_overrides``)."""

    async def make(settings_overrides: dict[str, Any] | None = None, **local: Any) -> AppClient:
        # The sidecars must know where the dispatcher listens before it starts.
        port = redisproc.free_port()
        settings = make_settings(
            redis_url,
            port=port,
            local={"work_root": str(tmp_path / "work"), **local},
            **(settings_overrides or {}),
        )
        backend = LocalBackend(
            LocalConfig(**settings.local.model_dump()),
            redis_target=settings.redis_target(redis_url),
            publisher=Publisher(redis_client, settings.streams),
            link=SidecarLink(url=settings.sidecar_url(), key=settings.ingest_key_bytes()),
        )
        app = create_app(settings, backend, redis_client)
        client: AppClient = await aiohttp_client(app, server_kwargs={"port": port})
        return client

    return make


async def publish(client: redis.asyncio.Redis, eval_id: str, kind: str, **fields: Any) -> str:
    """Publish an event as its producer would (sidecar unless ``source`` says otherwise)."""
    fields.setdefault("source", "sidecar")
    event = events.Event(eval_id=eval_id, type=events.EventType(kind), **fields)
    return (await Publisher(client).publish(event)).stream_id


async def wait_for(
    check: Callable[[], Awaitable[Any]], *, within: float = 10.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def record_with(api: AppClient, eval_id: str, **expected: Any) -> dict[str, Any]:
    """Wait until the record has the expected field values; return it."""

    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/v1/evaluations/{eval_id}")
        body: dict[str, Any] = await response.json()
        return body if all(body.get(k) == v for k, v in expected.items()) else None

    result: dict[str, Any] = await wait_for(check, what=f"{eval_id} with {expected}")
    return result


TERMINAL = {s.value for s in records.TERMINAL_STATUSES}
