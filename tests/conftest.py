"""Fixtures every tier shares: a real Redis server for the session, a clean database (and a
client of it) per test."""

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio

from dispatcher.store import connect
from tests import redis_cluster as cluster
from tests import redis_mode, redisproc


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redisproc.RedisProcess]:
    server = redisproc.RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(request: pytest.FixtureRequest) -> str:
    """A clean database: the session's server flushed, or with ``CRUCIBLE_TEST_REDIS=cluster``
    the session's Redis Cluster, every master flushed (``tests.redis_mode``)."""
    if redis_mode.CLUSTER:
        url: str = request.getfixturevalue("redis_cluster_url")
        return url
    server: redisproc.RedisProcess = request.getfixturevalue("redis_server")
    client = redis.asyncio.Redis.from_url(server.url)
    await client.flushall()
    await client.aclose()
    return server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the per-test (flushed) database, closed at the end of the test: a cluster
    client on a Redis Cluster, as the dispatcher's own."""
    client = redis_mode.client(redis_url)
    await connect.initialized(client)  # as the dispatcher does before sharing it
    yield client
    await client.aclose()


@pytest.fixture
def restartable_redis(tmp_path: pathlib.Path) -> Iterator[redisproc.RedisProcess]:
    """A server of the test's own, for tests that kill and restart it."""
    server = redisproc.RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.RedisCluster]:
    """A real 3-master Redis Cluster for the session (started only by tests that ask)."""
    servers = cluster.RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    servers.start()
    yield servers
    servers.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: cluster.RedisCluster) -> str:
    """The cluster's URL, every master flushed: a clean database per test."""
    redis_cluster.flushall()
    return redis_cluster.url
