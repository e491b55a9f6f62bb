"""The status store: evaluation records in Redis, and the one way events change them.

Its keys are named in ``wire.keys``: the record hash, the index of every evaluation and one
index per status (``apply_event.lua`` moves an id between those). On a Redis Cluster they are
partitioned (``wire.keys.Keyspace``): a listing merges the partitions' indexes, a tenant's
limits are the step before the record's (``tenant_admit.lua``), and what an end frees outside
its partition is freed in the step after it.

Records are created by ``create_record.lua`` (exists -> the existing digest) and changed only by
``apply_event.lua`` (the status rules), so concurrent dispatchers never interleave.
Index entries of expired records are dropped lazily (listing) and by ``prune``.
"""

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence

import redis.asyncio
from redis.asyncio.client import Pipeline

from dispatcher import errors, tenants
from dispatcher.store import coalesce, connect, layout, lua
from dispatcher.store.records import SUMMARY_FIELDS, Record, Status, Summary
from wire import events, tenancy

# A tenant at its limit of evaluations not yet ended: when to look again (one may end soon).
ACTIVE_RETRY_AFTER_SECONDS = 1
_SYNC_CHUNK = 500
_OVER_LIMIT = 2


def _limit_error(
    which: str, wait: str, limits: tenants.TenantLimits | None
) -> errors.TenantLimitError:
    if which == "active":
        active_max = limits.active_max if limits else None
        return errors.TenantLimitError(
            f"the tenant has {active_max} evaluations not yet ended, its limit; "
            "retry when one ends",
            retry_after_seconds=ACTIVE_RETRY_AFTER_SECONDS,
        )  # no hold: an evaluation may end at any moment, and a retry of one that exists is
        # answered from its record
    return errors.TenantLimitError(
        "the tenant's submission rate is used up; retry after the wait",
        retry_after_seconds=max(1, math.ceil(float(wait))),
        hold_seconds=float(wait),
    )


@dataclasses.dataclass(frozen=True)
class Page:
    records: list[Summary]
    next_cursor: str | None


class Store:
    def __init__(self, client: redis.asyncio.Redis, *, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._coalescer = coalesce.Coalescer(client)
        self.keyspace = connect.keyspace(client)

    async def create(
        self,
        record: Record,
        *,
        then: Callable[[Pipeline], None] | None = None,
        limits: tenants.TenantLimits | None = None,
        entry: layout.QueueEntry | None = None,
    ) -> str | None:
        """Create ``record`` unless its eval_id exists; None if created, else the existing
        record's request digest. Over its tenant's ``limits``: ``TenantLimitError``, nothing
        written. ``then`` queues more commands into the same round trip (a submission's
        ``accepted``, guarded by the record's existence); if one of those fails, the record is
        removed again (only when it is this call's) and the error raised. ``entry``: a
        backend's queue entry, written by the script only if it creates the record."""
        nonce = '"' + os.urandom(16).hex() + '"'  # JSON text like every other field
        if self.keyspace.partitioned and limits is not None:
            await self._hold_place(record, limits)  # the tenant's slot, a step of its own
            limits = None
        args = self.create_args(record, nonce, limits, entry)
        script_keys = layout.create_keys(
            self.keyspace,
            record,
            count_active=bool(limits and limits.active_max),
            bucket=bool(limits and limits.submissions_per_second),
            entry_key=entry.key if entry is not None else None,
        )
        pipe = self._client.pipeline(transaction=False)
        lua.CREATE_RECORD.queue(pipe, script_keys, args)
        if then is not None:
            then(pipe)
        # Creations that arrive together share a round trip (a burst of submissions).
        replies = await self._coalescer.execute(pipe)
        if isinstance(replies[0], Exception):
            await self._free_place(record.eval_id)
            raise replies[0]  # nothing was created
        created, digest, their_nonce = replies[0]
        if int(created) == _OVER_LIMIT:
            raise _limit_error(digest.decode(), their_nonce.decode(), limits)
        ours = bool(int(created)) or their_nonce.decode() == nonce  # a retried call: still ours
        failed = next((r for r in replies[1:] if isinstance(r, Exception)), None)
        if failed is not None:
            if ours:
                await self.remove(record.eval_id, entry)  # no half-created evaluation
            raise failed
        return None if ours else str(json.loads(digest))

    async def _hold_place(self, record: Record, limits: tenants.TenantLimits) -> None:
        """A Redis Cluster's step before the record: the tenant's place within its limits."""
        if not (limits.active_max or limits.submissions_per_second):
            return
        tenant, _ = tenancy.split(record.eval_id)
        reply = await lua.TENANT_ADMIT(
            self._client,
            [self.keyspace.tenant_active(tenant), self.keyspace.tenant_bucket(tenant)],
            [
                record.eval_id, record.created_at, limits.active_max or 0,
                limits.submissions_per_second or 0, limits.submissions_burst,
            ],
        )  # fmt: skip
        held, which, wait = reply
        if int(held) == _OVER_LIMIT:
            raise _limit_error(which.decode(), wait.decode(), limits)

    async def _free_place(self, eval_id: str) -> None:
        """Undo ``_hold_place`` (an existing record that ended keeps no place: the sweep)."""
        if self.keyspace.partitioned:
            tenant, _ = tenancy.split(eval_id)
            await self._client.zrem(self.keyspace.tenant_active(tenant), eval_id)

    def create_args(
        self,
        record: Record,
        nonce: str,
        limits: tenants.TenantLimits | None = None,
        entry: layout.QueueEntry | None = None,
    ) -> list[str | int | float]:
        """ARGV of create_record.lua."""
        tenant, _ = tenancy.split(record.eval_id)
        return [
            self._ttl, record.created_at, record.eval_id, nonce, tenant,
            (limits.active_max or 0) if limits else 0,
            (limits.submissions_per_second or 0) if limits else 0,
            limits.submissions_burst if limits else 1,
            entry.field if entry else "", entry.value if entry else "",
            layout.packed_fields(record),
        ]  # fmt: skip

    async def get(self, eval_id: str) -> Record | None:
        raw = await self._client.hgetall(self.keyspace.record(eval_id))  # type: ignore[misc]
        return layout.decode_record(raw)

    async def require(self, eval_id: str) -> Record:
        record = await self.get(eval_id)
        if record is None:
            # As the caller named it: the tenant's prefix is the API's business, not theirs.
            raise errors.NotFoundError(f"no evaluation {tenancy.split(eval_id)[1]!r}")
        return record

    async def set_job_name(self, eval_id: str, job_name: str) -> None:
        # HSETNX: the backend's own `scheduled` event may already have recorded it.
        await self._client.hsetnx(self.keyspace.record(eval_id), "job_name", json.dumps(job_name))  # type: ignore[misc]

    async def remove(self, eval_id: str, entry: layout.QueueEntry | None = None) -> None:
        """Undo a creation whose submission the backend refused (nothing else removes), with
        the backend's queue entry written along with it."""
        space = self.keyspace
        await lua.REMOVE_RECORD(
            self._client,
            [
                space.record(eval_id), space.eval_stream(eval_id), space.publish_meta(eval_id),
                entry.key if entry is not None else space.record(eval_id),
                *layout.indexes_of(space, eval_id),
            ],
            [eval_id, entry.field if entry is not None else ""],
        )  # fmt: skip
        await self._free_place(eval_id)

    async def apply(self, event: events.Event) -> bool:
        return bool(await self.apply_many([event]))

    async def apply_many(self, batch: Sequence[events.Event]) -> int:
        """Apply events in order in one round trip; how many changed a record."""
        if not batch:
            return 0
        changes = 0
        async with self._client.pipeline(transaction=False) as pipe:
            for event in batch:
                lua.APPLY_EVENT.queue(
                    pipe, layout.status_keys(self.keyspace, event.eval_id), layout.event_args(event)
                )
                changes += 1
            for event in batch:
                if event.terminal:
                    for key, member in layout.ended_places(self.keyspace, event.eval_id):
                        pipe.zrem(key, member)
            results = await lua.execute(pipe)
        return sum(1 for r in results[:changes] if int(r))

    async def sync(self, eval_id: str) -> Record:
        """Apply the evaluation's own stream in order, so the record reflects every event
        published so far (the consumer group may lag behind); replays are no-ops."""
        start = "-"
        while True:
            entries = await self._client.xrange(
                self.keyspace.eval_stream(eval_id), min=start, count=_SYNC_CHUNK
            )
            await self.apply_many(list(layout.status_events(entries)))
            if len(entries) < _SYNC_CHUNK:
                break
            start = "(" + entries[-1][0].decode()
        return await self.require(eval_id)

    async def listing(
        self, *, tenant: str | None, status: Status | None, limit: int, cursor: str | None
    ) -> Page:
        """Newest first; ``tenant`` None: every tenant's (an operator's view)."""
        ids = await self._page_ids(
            [self._index(p, tenant, status) for p in self.keyspace.all_partitions()],
            limit + 1,
            cursor,
        )
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id, _ in ids[:limit]:
                pipe.hmget(self.keyspace.record(eval_id), list(SUMMARY_FIELDS))
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
        space = self.keyspace
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
                    for key in layout.indexes_of(self.keyspace, eval_id):
                        pipe.zrem(key, eval_id)
                await pipe.execute()

    async def prune(self, now: float | None = None) -> None:
        """Drop index entries older than the record TTL (their records have expired); on a
        Redis Cluster, free the tenants' places of evaluations that ended unseen. Three round
        trips however many partitions and tenants: the tenants, the trims, the sweep's."""
        horizon = (time.time() if now is None else now) - self._ttl
        space = self.keyspace
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
        actives = [self.keyspace.tenant_active(tenant) for tenant in sorted(tenants)]
        async with self._client.pipeline(transaction=False) as pipe:
            for active in actives:
                pipe.zrange(active, 0, -1)
            held = [[m.decode() for m in found] for found in await pipe.execute()]
        places = [(a, eval_id) for a, ids in zip(actives, held, strict=True) for eval_id in ids]
        if not places:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for _, eval_id in places:
                pipe.hget(self.keyspace.record(eval_id), "status")
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
