"""The status store: evaluation records in Redis, and the one way events change them.

Its keys are named in ``wire.keys``: the record hash, the index of every evaluation and one
index per status (``apply_event.lua`` moves an id between those). On a Redis Cluster they are
partitioned (``wire.keys.Keyspace``): a listing merges the partitions' indexes, a tenant's
limits are the step before the record's (``tenant_admit.lua``), and what an end frees outside
its partition is freed in the step after it.

Records are created by ``create_record.lua`` (exists -> the existing digest) and changed only by
``apply_event.lua`` (the status rules), so concurrent dispatchers never interleave.
Listing and pruning the indexes: ``dispatcher.store.indexes`` (``Store.indexes``).
"""

import json
import math
import os
from collections.abc import Callable, Sequence

import redis.asyncio
from redis.asyncio.client import Pipeline

from dispatcher import errors, tenants
from dispatcher.store import coalesce, connect, layout, lua
from dispatcher.store.indexes import Indexes
from dispatcher.store.records import Record
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


class Store:
    def __init__(self, client: redis.asyncio.Redis, *, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._coalescer = coalesce.Coalescer(client)
        self.keyspace = connect.keyspace(client)
        self.indexes = Indexes(client, self.keyspace, ttl_seconds=ttl_seconds)

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
