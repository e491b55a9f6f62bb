"""The status store: evaluation records in Redis, and the one way events change them.

Its keys are named in ``wire.keys``: the record hash, the index of every evaluation and one
index per status (``apply_event.lua`` moves an id between those).

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
from dispatcher.store import coalesce, layout, lua
from dispatcher.store.records import SUMMARY_FIELDS, Record, Status, Summary
from wire import events, keys, tenancy

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
        args = self.create_args(record, nonce, limits, entry)
        script_keys = layout.create_keys(record)
        if entry is not None:
            script_keys.append(entry.key)
        pipe = self._client.pipeline(transaction=False)
        lua.CREATE_RECORD.queue(pipe, script_keys, args)
        if then is not None:
            then(pipe)
        # Creations that arrive together share a round trip (a burst of submissions).
        replies = await self._coalescer.execute(pipe)
        if isinstance(replies[0], Exception):
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

    def create_args(
        self,
        record: Record,
        nonce: str,
        limits: tenants.TenantLimits | None = None,
        entry: layout.QueueEntry | None = None,
    ) -> list[str | int | float]:
        """ARGV of create_record.lua."""
        tenant, _ = tenancy.split(record.eval_id)
        args: list[str | int | float] = [
            self._ttl, record.created_at, record.eval_id, nonce, tenant,
            (limits.active_max or 0) if limits else 0,
            (limits.submissions_per_second or 0) if limits else 0,
            limits.submissions_burst if limits else 1,
            entry.field if entry else "", entry.value if entry else "",
            layout.packed_fields(record),
        ]  # fmt: skip
        return args

    async def get(self, eval_id: str) -> Record | None:
        raw = await self._client.hgetall(layout.record_key(eval_id))  # type: ignore[misc]
        return layout.decode_record(raw)

    async def require(self, eval_id: str) -> Record:
        record = await self.get(eval_id)
        if record is None:
            # As the caller named it: the tenant's prefix is the API's business, not theirs.
            raise errors.NotFoundError(f"no evaluation {tenancy.split(eval_id)[1]!r}")
        return record

    async def set_job_name(self, eval_id: str, job_name: str) -> None:
        # HSETNX: the backend's own `scheduled` event may already have recorded it.
        await self._client.hsetnx(layout.record_key(eval_id), "job_name", json.dumps(job_name))  # type: ignore[misc]

    async def remove(self, eval_id: str, entry: layout.QueueEntry | None = None) -> None:
        """Undo a creation whose submission the backend refused (nothing else removes), with
        the backend's queue entry written along with it."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(layout.record_key(eval_id), keys.eval_stream(eval_id))
            if entry is not None:
                pipe.hdel(entry.key, entry.field)
            pipe.delete(keys.publish_meta(eval_id))
            for key in layout.indexes_of(tenancy.split(eval_id)[0]):
                pipe.zrem(key, eval_id)
            await pipe.execute()

    async def apply(self, event: events.Event) -> bool:
        reply = await lua.APPLY_EVENT(
            self._client, layout.status_keys(event.eval_id), layout.event_args(event)
        )
        return bool(reply)

    async def apply_many(self, batch: Sequence[events.Event]) -> int:
        """Apply events in order in one round trip; how many changed a record."""
        if not batch:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for event in batch:
                lua.APPLY_EVENT.queue(
                    pipe, layout.status_keys(event.eval_id), layout.event_args(event)
                )
            results = await lua.execute(pipe)
        return sum(1 for r in results if int(r))

    async def sync(self, eval_id: str) -> Record:
        """Apply the evaluation's own stream in order, so the record reflects every event
        published so far (the consumer group may lag behind); replays are no-ops."""
        start = "-"
        while True:
            entries = await self._client.xrange(
                keys.eval_stream(eval_id), min=start, count=_SYNC_CHUNK
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
        if tenant is None:
            index = layout.INDEX if status is None else layout.status_index(status)
        elif status is None:
            index = keys.tenant_index(tenant)
        else:
            index = keys.tenant_status_index(tenant, status.value)
        ids = await self._page_ids(index, limit + 1, cursor)
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id, _ in ids[:limit]:
                pipe.hmget(layout.record_key(eval_id), list(SUMMARY_FIELDS))
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

    async def _page_ids(
        self, index: str, count: int, cursor: str | None
    ) -> list[tuple[str, float]]:
        if cursor is None:
            rows = await self._client.zrange(
                index, "+inf", "-inf", desc=True, byscore=True, withscores=True, offset=0, num=count
            )
            return [(m.decode(), s) for m, s in rows]
        score, last_id = layout.decode_cursor(cursor)
        # Entries sharing the cursor's score come in descending id order; then lower scores.
        same = await self._client.zrange(
            index, score, score, desc=True, byscore=True, withscores=True
        )
        rows = [(m.decode(), s) for m, s in same if m.decode() < last_id]
        lower = await self._client.zrange(
            index,
            f"({score!r}",
            "-inf",
            desc=True,
            byscore=True,
            withscores=True,
            offset=0,
            num=count,
        )
        rows += [(m.decode(), s) for m, s in lower]
        return rows[:count]

    async def _drop_from_indexes(self, eval_ids: Iterable[str]) -> None:
        ids = list(eval_ids)
        if ids:
            async with self._client.pipeline(transaction=False) as pipe:
                for eval_id in ids:
                    for key in layout.indexes_of(tenancy.split(eval_id)[0]):
                        pipe.zrem(key, eval_id)
                await pipe.execute()

    async def prune(self, now: float | None = None) -> None:
        """Drop index entries older than the record TTL (their records have expired)."""
        horizon = (time.time() if now is None else now) - self._ttl
        tenants = {t.decode() for t in await self._client.smembers(keys.TENANTS)}  # type: ignore[misc]
        async with self._client.pipeline(transaction=False) as pipe:
            for key in [
                layout.INDEX,
                *layout.STATUS_INDEXES,
                *(k for t in tenants for k in layout.tenant_indexes(t)),
            ]:
                pipe.zremrangebyscore(key, "-inf", f"({horizon!r}")
            await pipe.execute()
