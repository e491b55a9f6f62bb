"""Shutting down does not wait on open event streams."""

import asyncio
from typing import Any

from aiohttp.test_utils import TestServer

from dispatcher.api.app import create_app
from tests.integration.dispatcher.conftest import FakeBackend, make_settings


async def test_open_event_streams_end_when_the_server_shuts_down(
    redis_client: Any, redis_url: str, aiohttp_client_cls: Any
):
    backend = FakeBackend()
    app = create_app(make_settings(redis_url, sse_heartbeat_seconds=30), backend, redis_client)
    server = TestServer(app)
    async with aiohttp_client_cls(server) as client:
        await client.post("/v1/evaluations", json={"code": "1", "eval_id": "open"})
        response = await client.get("/v1/evaluations/open/events")
        await response.content.readuntil(b"event: accepted")
        # With a 30 s heartbeat the stream would idle on; shutdown must end it at once.
        await asyncio.wait_for(server.close(), 10)
        await asyncio.wait_for(response.read(), 10)
    assert backend.closed
