"""The 3-master Redis Cluster harness (tests/redis_cluster.py) is a real cluster: the slots are
split between the masters, a hash tag decides the node, and the server enforces one slot per
script."""

import asyncio
import itertools
import os
import pathlib
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio.cluster
from redis.exceptions import ClusterCrossSlotError, MovedError, RedisClusterException

from dispatcher.store import connect
from tests import redis_cluster as cluster

pytestmark = pytest.mark.integration

TWO_KEYS = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 2"


@pytest.fixture
async def client(redis_cluster_url: str) -> AsyncIterator[redis.asyncio.cluster.RedisCluster]:
    rc = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster_url)
    # Learn the slot map now: before it, redis-py skips its own one-slot check of a command.
    await rc.initialize()
    yield rc
    await rc.aclose()


def slot_owners(node: cluster.ClusterNode) -> list[tuple[int, int, int]]:
    """(first slot, last slot, port of the master) as ``node`` sees the cluster, sorted."""
    with node.client() as c:
        entries = c.execute_command("CLUSTER", "SLOTS")
    return sorted((int(e[0]), int(e[1]), int(e[2][1])) for e in entries)


def tags_of(node: cluster.ClusterNode, count: int) -> list[str]:
    """``count`` hash tags (``{t0}``, ``{t1}``, ...) of different slots, all owned by ``node``."""
    owned = [(low, high) for low, high, port in slot_owners(node) if port == node.port]
    found: dict[int, str] = {}
    with node.client() as c:
        for i in range(1000):
            slot = int(c.execute_command("CLUSTER", "KEYSLOT", f"{{t{i}}}"))
            if any(low <= slot <= high for low, high in owned):
                found.setdefault(slot, f"{{t{i}}}")
                if len(found) == count:
                    return list(found.values())
    raise AssertionError(f"node {node.port} owns no {count} of 1000 tags")


def test_masters_split_every_slot_between_them(redis_cluster: cluster.RedisCluster) -> None:
    views = [slot_owners(node) for node in redis_cluster.nodes]
    assert all(view == views[0] for view in views)  # every node knows the same map
    ranges = views[0]
    assert sorted(port for _, _, port in ranges) == sorted(redis_cluster.ports)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == cluster.SLOTS - 1
    for (_, high, _), (low, _, _) in itertools.pairwise(ranges):
        assert low == high + 1  # contiguous: no gap, no overlap


async def test_hash_tags_place_keys_on_different_masters(
    redis_cluster: cluster.RedisCluster, client: redis.asyncio.cluster.RedisCluster
) -> None:
    tags = {node.port: tags_of(node, 1)[0] for node in redis_cluster.nodes}
    for tag in tags.values():
        await client.set(f"crucible:eval:{tag}", tag)
    for node in redis_cluster.nodes:
        own = tags[node.port]
        with node.client() as direct:
            assert direct.get(f"crucible:eval:{own}") == own.encode()
            assert direct.dbsize() == 1
            other_port, other = next((p, t) for p, t in tags.items() if p != node.port)
            with pytest.raises(MovedError) as moved:
                direct.get(f"crucible:eval:{other}")
            assert moved.value.port == other_port


async def test_a_script_on_keys_of_one_hash_tag_runs_through_the_cluster_client(
    redis_cluster: cluster.RedisCluster, client: redis.asyncio.cluster.RedisCluster
) -> None:
    node = redis_cluster.nodes[2]
    (tag,) = tags_of(node, 1)
    keys = [f"crucible:eval:{tag}", f"crucible:pub:{tag}"]
    # redis-py types register_script's self as redis.asyncio.Redis; RedisCluster is not one.
    script = client.register_script(TWO_KEYS)  # type: ignore[misc]
    assert await script(keys=keys, args=["v"]) == 2
    with node.client() as direct:
        assert direct.mget(keys) == [b"v", b"v"]


async def test_a_script_on_keys_of_two_slots_is_refused(
    redis_cluster: cluster.RedisCluster, client: redis.asyncio.cluster.RedisCluster
) -> None:
    node = redis_cluster.nodes[0]
    # Two tags of different slots that the same master owns: only the slot rule can refuse.
    first, second = tags_of(node, 2)
    with pytest.raises(RedisClusterException, match="all keys must map to the same key slot"):
        await client.eval(TWO_KEYS, 2, first, second, "v")  # type: ignore[misc]
    with node.client() as direct, pytest.raises(ClusterCrossSlotError):
        direct.eval(TWO_KEYS, 2, first, second, "v")  # the server's own CROSSSLOT
    assert await client.exists(first, second) == 0


async def test_a_killed_master_comes_back_with_its_slots_and_data(tmp_path: pathlib.Path) -> None:
    servers = cluster.RedisCluster(tmp_path / "cluster")
    servers.start()
    try:
        node = servers.nodes[1]
        before = slot_owners(node)
        (key,) = tags_of(node, 1)
        with node.client() as direct:
            direct.set(key, "kept")
        node.kill()
        node.start()
        servers.wait_healthy()
        assert slot_owners(node) == before
        rc = redis.asyncio.cluster.RedisCluster.from_url(servers.url)
        try:
            assert await rc.get(key) == b"kept"
        finally:
            await rc.aclose()
    finally:
        servers.stop()
    assert all(n.proc is None for n in servers.nodes)


def test_a_cluster_that_does_not_form_names_the_node_logs(tmp_path: pathlib.Path) -> None:
    servers = cluster.RedisCluster(tmp_path / "cluster")
    try:
        for node in servers.nodes:
            node.start()  # no slots, no MEET: never healthy
        with pytest.raises(cluster.ClusterError, match="cluster_state fail") as failed:
            servers.wait_healthy(timeout=0.5)
        assert str(servers.nodes[2].log) in str(failed.value)
    finally:
        servers.stop()


async def test_two_word_commands_racing_a_new_clients_start(
    redis_cluster: cluster.RedisCluster,
) -> None:
    """redis-py lets a command that races a new cluster client's first one past the command
    table while it loads; XGROUP CREATE then finds no key and fails ("No way to dispatch this
    command"): without ``connect.initialized`` first, 15 of these 40 failed, every run. With
    it, as the dispatcher and the tests' client do, none does."""
    for delay in range(40):  # some of these land while the first command loads the table
        client = connect.connect(redis_cluster.url, cluster=True)
        try:
            await connect.initialized(client)
            tag = f"{{race-{delay}-{os.getpid()}}}"  # keys of this run alone
            first = asyncio.ensure_future(client.set(f"crucible:{tag}:x", "1"))
            for _ in range(delay):
                await asyncio.sleep(0)
            assert await client.xgroup_create(f"crucible:{tag}:s", "g", id="0", mkstream=True)
            await first
        finally:
            await client.aclose()
