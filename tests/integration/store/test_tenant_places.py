"""On a Redis Cluster a tenant's places (its evaluations not yet ended) live apart from the
records: the store's sweep frees those a dispatcher left behind, and only those."""

import json

import redis.asyncio

from dispatcher.store import connect
from dispatcher.store.store import Store
from wire import keys


async def test_the_sweep_frees_places_whose_record_ended_or_never_came(
    redis_cluster_url: str,
) -> None:
    client: redis.asyncio.Redis = connect.connect(redis_cluster_url, cluster=True)
    space = keys.CLUSTER
    try:
        active = space.tenant_active("acme")
        await client.zadd(active, {"acme~live": 1.0, "acme~ended": 2.0, "acme~never": 3.0})
        for eval_id, status in (("acme~live", "running"), ("acme~ended", "completed")):
            await client.hset(space.record(eval_id), "status", json.dumps(status))  # type: ignore[misc]
            partition = space.partition(eval_id)
            await client.sadd(space.tenants(partition), "acme")  # type: ignore[misc]
        await Store(client, ttl_seconds=3600).indexes.prune()
        assert [m.decode() for m in await client.zrange(active, 0, -1)] == ["acme~live"]
    finally:
        await client.aclose()
