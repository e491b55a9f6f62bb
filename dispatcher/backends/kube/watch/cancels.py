"""Cancel tombstones: a cancel is remembered in Redis, so a Job created after it is deleted.

A ``DELETE`` can race a submission: the Job may not exist yet when the cancel tries to delete
it. The cancel writes the tombstone first; the submission looks for it right after creating the
Job and deletes what it made; the reconciler reads it to call a vanished Job ``cancelled``
rather than ``error``. Any dispatcher replica sees the same tombstones.
"""

import redis.asyncio

from dispatcher.store import connect


async def remember(client: redis.asyncio.Redis, eval_id: str, ttl_seconds: int) -> None:
    await client.set(connect.keyspace(client).cancel_tombstone(eval_id), "1", ex=ttl_seconds)


async def requested(client: redis.asyncio.Redis, eval_id: str) -> bool:
    return bool(await client.exists(connect.keyspace(client).cancel_tombstone(eval_id)))
