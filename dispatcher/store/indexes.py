"""Listing and pruning the status store's indexes: the evaluations a page shows, newest first,
merged over the partitions' indexes, and the entries whose records have expired.

A record expires on its own (its TTL); its index entries do not. They are dropped lazily when
a listing finds the record gone, and by ``prune`` once they are older than the TTL. On a Redis
Cluster ``prune`` also frees the tenants' places of evaluations that ended unseen.
"""

import dataclasses
import json
import time
from collections.abc import Iterable

import redis.asyncio

from dispatcher.store import layout
from dispatcher.store.records import SUMMARY_FIELDS, Status, Summary
from wire import keys


@dataclasses.dataclass(frozen=True)
class Page:
    records: list[Summary]
    next_cursor: str | None


class Indexes:
    def __init__(
        self, client: redis.asyncio.Redis, keyspace: keys.Keyspace, *, ttl_seconds: int
    ) -> None:
        self._client = client
        self._keyspace = keyspace
        self._ttl = ttl_seconds

    async def listing(
        self, *, tenant: str | None, status: Status | None, limit: int, cursor: str | None
    ) -> Page:
        """Newest first; ``tenant`` None: every tenant's (an operator's view)."""
        ids = await self._page_ids(
            [self._index(p, tenant, status) for p in self._keyspace.all_partitions()],
            limit + 1,
            cursor,
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id, _ in ids[:limit]:
                pipe.hmget(self._keyspace.record(eval_id), list(SUMMARY_FIELDS))
            raws = await pipe.execute()
        found: list[Summary] = []
        expired: list[str] = []
        for (eval_id, _), values in zip(ids, raws, strict=False):
            record = layout.decode_summary(values)
            if record is None:
                expired.append(eval_id)
            else:
                found.append(record)
        await self._drop_from_indexes(expired)
        more = len(ids) > limit
        return Page(found, layout.encode_cursor(*ids[limit - 1]) if more else None)

    def _index(self, partition: int, tenant: str | None, status: Status | None) -> str:
        space = self._keyspace
        if tenant is None:
            return (
                space.index(partition)
                if status is None
                else space.status_index(partition, status.value)
            )
        if status is None:
            return space.tenant_index(partition, tenant)
        return space.tenant_status_index(partition, tenant, status.value)

    async def _page_ids(
        self, indexes: list[str], count: int, cursor: str | None
    ) -> list[tuple[str, float]]:
        """The first ``count`` ids after ``cursor`` in the indexes merged (a partition each),
        newest first; ids sharing a score in descending order, as one index lists them."""
        async with self._client.pipeline(transaction=False) as pipe:
            if cursor is None:
                for index in indexes:
                    pipe.zrange(
                        index, "+inf", "-inf", desc=True, byscore=True, withscores=True,
                        offset=0, num=count,
                    )  # fmt: skip
                replies = await pipe.execute()
                rows = [(m.decode(), s) for reply in replies for m, s in reply]
            else:
                score, last_id = layout.decode_cursor(cursor)
                for index in indexes:
                    # Entries sharing the cursor's score, then lower scores.
                    pipe.zrange(index, score, score, desc=True, byscore=True, withscores=True)
                    pipe.zrange(
                        index, f"({score!r}", "-inf", desc=True, byscore=True, withscores=True,
                        offset=0, num=count,
                    )  # fmt: skip
                replies = await pipe.execute()
                # Even replies share the cursor's score: only ids before the cursor's count.
                rows = [
                    (member, score)
                    for i, reply in enumerate(replies)
                    for member, score in ((m.decode(), s) for m, s in reply)
                    if i % 2 or member < last_id
                ]
        rows.sort(key=lambda row: (row[1], row[0]), reverse=True)
        return rows[:count]

    async def _drop_from_indexes(self, eval_ids: Iterable[str]) -> None:
        ids = list(eval_ids)
        if ids:
            async with self._client.pipeline(transaction=False) as pipe:
                for eval_id in ids:
                    for key in layout.indexes_of(self._keyspace, eval_id):
                        pipe.zrem(key, eval_id)
                await pipe.execute()

    async def prune(self, now: float | None = None) -> None:
        """Drop index entries older than the record TTL (their records have expired); on a
        Redis Cluster, free the tenants' places of evaluations that ended unseen. Three round
        trips however many partitions and tenants: the tenants, the trims, the sweep's."""
        horizon = (time.time() if now is None else now) - self._ttl
        space = self._keyspace
        partitions = list(space.all_partitions())
        async with self._client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.smembers(space.tenants(partition))
            members = await pipe.execute()
        tenants = [{t.decode() for t in found} for found in members]
        async with self._client.pipeline(transaction=False) as pipe:
            for partition, present in zip(partitions, tenants, strict=True):
                for key in [
                    space.index(partition),
                    *layout.status_indexes(space, partition),
                    *(k for t in present for k in layout.tenant_indexes(space, partition, t)),
                ]:
                    pipe.zremrangebyscore(key, "-inf", f"({horizon!r}")
            await pipe.execute()
        if space.partitioned:
            await self._sweep_places(set().union(*tenants))

    async def _sweep_places(self, tenants: set[str]) -> None:
        """Places whose record is gone or ended (a dispatcher died between the steps)."""
        actives = [self._keyspace.tenant_active(tenant) for tenant in sorted(tenants)]
        async with self._client.pipeline(transaction=False) as pipe:
            for active in actives:
                pipe.zrange(active, 0, -1)
            held = [[m.decode() for m in found] for found in await pipe.execute()]
        places = [(a, eval_id) for a, ids in zip(actives, held, strict=True) for eval_id in ids]
        if not places:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for _, eval_id in places:
                pipe.hget(self._keyspace.record(eval_id), "status")
            statuses = await pipe.execute()
        ended = [
            place
            for place, status in zip(places, statuses, strict=True)
            if status is None or Status(json.loads(status)).terminal
        ]
        if ended:
            async with self._client.pipeline(transaction=False) as pipe:
                for active, eval_id in ended:
                    pipe.zrem(active, eval_id)
                await pipe.execute()
