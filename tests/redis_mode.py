"""Which Redis the tests' ``redis_url`` and ``redis_client`` are: one server (the default) or,
with ``CRUCIBLE_TEST_REDIS=cluster``, a real 3-master Redis Cluster (``tests.redis_cluster``);
and the keyspace crucible uses on it, for tests that look at keys themselves."""

import os
from typing import Any, cast

import pytest
import redis.asyncio

from dispatcher.store import connect
from wire import keys

CLUSTER = os.environ.get("CRUCIBLE_TEST_REDIS", "") == "cluster"
SPACE = keys.CLUSTER if CLUSTER else keys.STANDALONE

one_server_only = pytest.mark.skipif(
    CLUSTER,
    reason="about one Redis server (its restart, its maxmemory, its connections) or the "
    "schema fuzzer: it runs in the one-server pass",
)


def client(url: str) -> redis.asyncio.Redis:
    """A client of ``url``: a cluster client on a Redis Cluster, as the dispatcher's own."""
    if CLUSTER:
        return connect.connect(url, cluster=True)
    return redis.asyncio.Redis.from_url(url)


def pubsub(client: redis.asyncio.Redis) -> redis.asyncio.client.PubSub:
    """A pub/sub connection. A cluster client has none; classic pub/sub reaches every node of
    a Redis Cluster, so a plain client of one node listens to all of them."""
    if CLUSTER:
        node = cast(Any, client).get_default_node()
        return redis.asyncio.Redis(host=node.host, port=node.port).pubsub()
    return client.pubsub()


def start_of_global_stream() -> str:
    """The position before any event of the global stream (one id per partition)."""
    return ",".join(["0-0"] * SPACE.partitions)


def index_of(eval_id: str) -> str:
    """The index that lists ``eval_id`` among all evaluations (its partition's)."""
    return SPACE.index(SPACE.partition(eval_id))


def inflight_of(eval_id: str) -> str:
    """The local backend's in-flight hash that holds ``eval_id`` (its partition's)."""
    return SPACE.local_inflight(SPACE.partition(eval_id))
