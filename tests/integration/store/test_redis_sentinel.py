"""The dispatcher on Redis Sentinel: it finds the master through the Sentinel and follows it
to the replica the Sentinel promotes when the master dies."""

import asyncio
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.api.app import create_app
from dispatcher.store import connect
from tests.integration.dispatcher.conftest import FakeBackend, make_settings, record_with
from tests.redis_sentinel import MASTER_NAME, SentinelSet


@pytest.fixture
def sentinels(tmp_path: pathlib.Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(tmp_path / "sentinel-set")
    servers.start()
    yield servers
    servers.stop()


async def test_submissions_survive_a_failover(sentinels: SentinelSet, aiohttp_client: Any):
    settings = make_settings(sentinels.url, redis_cluster=False, redis_sentinel_master=MASTER_NAME)
    client = settings.redis_target(sentinels.url).connect()
    api = await aiohttp_client(create_app(settings, FakeBackend(), client))
    first = sentinels.master.port
    assert sentinels.master_port() == first
    assert (
        await api.post("/v1/evaluations", json={"code": "1", "eval_id": "before"})
    ).status == 201
    await record_with(api, "before", status="accepted")
    assert await client.wait(1, 5000) == 1  # (WAIT) the replica holds it before the master dies

    sentinels.master.kill()
    deadline = time.monotonic() + 30
    while sentinels.master_port() == first:  # the Sentinel promotes the replica
        assert time.monotonic() < deadline, "no failover within 30 s"
        await asyncio.sleep(0.2)

    # The same client, asked again, finds the new master: what was written stays.
    async def submitted() -> bool:
        response = await api.post("/v1/evaluations", json={"code": "1", "eval_id": "after"})
        return response.status == 201

    deadline = time.monotonic() + 30
    while not await submitted():
        assert time.monotonic() < deadline, "no submission reached the new master"
        await asyncio.sleep(0.5)
    await record_with(api, "after", status="accepted")
    await record_with(api, "before", status="accepted")
    await client.aclose()


def test_the_url_names_the_sentinels_and_the_masters_credentials() -> None:
    addresses, master = connect.sentinels_of("redis://app:s%40cret@s1:26379,s2:26380,s3/2")
    assert addresses == [("s1", 26379), ("s2", 26380), ("s3", 26379)]
    assert master == {"username": "app", "password": "s@cret", "db": 2, "ssl": False}
