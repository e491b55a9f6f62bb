"""Drives the whole pipeline on one machine: dispatcher HTTP API, consumer group, local backend,
real sidecar and wrapper processes, a real Redis. Only the HTTP server is in-process."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import redis
import redis.asyncio
from aiohttp import test_utils

from dispatcher import serve
from dispatcher.api.app import create_app
from dispatcher.backends.base import Backend
from dispatcher.backends.local.config import LocalConfig
from dispatcher.settings import DispatcherSettings
from dispatcher.store import publish
from tests import redis_mode, redisproc
from tests.redis_mode import SPACE
from wire import events, keys

TERMINAL = {"completed", "failed", "timeout", "cancelled", "error"}
LEGACY_CHANNELS = ("evaluation:completed", "evaluation:failed")
# Published by a test to end a LegacySubscriber's listen() loop.
STOP_MESSAGE = json.dumps({"eval_id": "__stop__"})


class Dispatcher:
    """One dispatcher, built as ``crucible serve`` builds it, on a real loopback port."""

    def __init__(self, redis_url: str, local: LocalConfig, **settings: Any) -> None:
        self.redis_url = redis_url
        # The sidecars must know where the dispatcher listens before it starts.
        settings.setdefault("port", redisproc.free_port())
        settings.setdefault("redis_cluster", redis_mode.CLUSTER)
        self.settings = DispatcherSettings(redis_url=redis_url, local=local, **settings)
        self.client: test_utils.TestClient[Any, Any] | None = None
        self.backend: Backend | None = None
        self._redis: redis.asyncio.Redis | None = None

    async def start(self) -> "Dispatcher":
        self._redis = redis_mode.client(self.redis_url)
        publisher = publish.Publisher(self._redis, self.settings.streams)
        self.backend = serve.make_backend(self.settings, self._redis, publisher, self.redis_url)
        app = create_app(self.settings, self.backend, self._redis)
        server = test_utils.TestServer(app, host="127.0.0.1", port=self.settings.port)
        self.client = test_utils.TestClient(server)
        await self.client.start_server()
        return self

    async def stop(self) -> None:
        """Like SIGTERM to ``crucible serve``: the app's cleanup closes the backend."""
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def http(self) -> test_utils.TestClient[Any, Any]:
        assert self.client is not None, "dispatcher not started"
        return self.client

    async def submit(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/v1/evaluations", json=body)
        assert response.status == 201, await response.text()
        record: dict[str, Any] = await response.json()
        return record

    async def record(self, eval_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/evaluations/{eval_id}")
        assert response.status == 200, await response.text()
        record: dict[str, Any] = await response.json()
        return record

    async def wait_for(
        self, eval_id: str, condition: Callable[[dict[str, Any]], bool], within: float = 60
    ) -> dict[str, Any]:
        """The record once ``condition`` holds; fails with the last record after ``within``."""
        record: dict[str, Any] = {}
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            record = await self.record(eval_id)
            if condition(record):
                return record
            await asyncio.sleep(0.02)
        raise AssertionError(f"{eval_id}: condition not met within {within}s; last: {record}")

    async def wait_ended(self, eval_id: str, within: float = 60) -> dict[str, Any]:
        """The record once its status is terminal and the backend has verified it."""
        return await self.wait_for(
            eval_id, lambda r: r["status"] in TERMINAL and r["verified"], within
        )

    async def stream(self, eval_id: str) -> list[events.Event]:
        """Every event of the evaluation's own stream, oldest first, as stored in Redis."""
        assert self._redis is not None, "dispatcher not started"
        entries = await self._redis.xrange(SPACE.eval_stream(eval_id))
        return [events.parse(fields[keys.EVENT_FIELD.encode()]) for _, fields in entries]


DispatcherFactory = Callable[..., Awaitable[Dispatcher]]


async def eventually(condition: Callable[[], Awaitable[bool] | bool], within: float = 30) -> None:
    """Wait until ``condition()`` holds (it may be a coroutine function)."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


async def wait_until_ready(http: aiohttp.ClientSession) -> None:
    """Wait until the dispatcher ``http`` talks to (a ``crucible serve`` process) is up and
    answers ``/readyz`` with 200."""

    async def answers() -> bool:
        try:
            async with http.get("/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(answers)


async def sse_events(
    dispatcher: Dispatcher, eval_id: str, last_event_id: str | None = None
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(id, event type, event) from the SSE endpoint until the server ends the response."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with dispatcher.http.get(f"/v1/evaluations/{eval_id}/events", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line:
                if not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                continue
            if "data" in fields:
                yield fields.get("id", ""), fields.get("event", ""), json.loads(fields["data"])
            fields = {}


class LegacySubscriber:
    """A consumer written as the original design's Celery side would be: a plain redis-py
    pub/sub subscription, JSON payloads, these five fields. Runs in a thread, as Celery does."""

    def __init__(self, redis_url: str) -> None:
        self.heard: list[dict[str, Any]] = []
        self.ready = threading.Event()
        self._redis_url = redis_url
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def start(self) -> "LegacySubscriber":
        self._thread.start()
        assert self.ready.wait(10), "subscription not confirmed"
        return self

    def stop(self) -> None:
        """End the listen loop (idempotent): a message on the channel it listens to."""
        if not self._thread.is_alive():
            return
        with redis.Redis.from_url(self._redis_url) as client:
            client.publish(LEGACY_CHANNELS[0], STOP_MESSAGE)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _listen(self) -> None:
        r = redis.Redis.from_url(self._redis_url)
        p = r.pubsub()  # type: ignore[no-untyped-call]
        p.subscribe("evaluation:completed", "evaluation:failed")
        confirmed = 0
        for message in p.listen():
            if message["type"] == "subscribe":
                confirmed += 1
                if confirmed == len(LEGACY_CHANNELS):
                    self.ready.set()
                continue
            if message["type"] != "message":
                continue
            data = json.loads(message["data"])
            if data["eval_id"] == "__stop__":
                break
            self.heard.append(
                {
                    "channel": message["channel"].decode(),
                    "eval_id": data["eval_id"],
                    "exit_code": data["exit_code"],
                    "output": data["output"],
                    "error": data["error"],
                    "duration_seconds": data["duration_seconds"],
                    "status": data.get("status"),
                    "corrects": data.get("corrects"),
                }
            )
        p.close()
        r.close()
