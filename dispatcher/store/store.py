"""The status store: evaluation records in Redis, and the one way events change them.

Its keys are named in ``wire.keys``: the record hash, the index of every evaluation and one
index per status (``apply_event.lua`` moves an id between those).

Records are created by ``create_record.lua`` (exists -> the existing digest) and changed only by
``apply_event.lua`` (the status rules), so concurrent dispatchers never interleave.
Index entries of expired records are dropped lazily (listing) and by ``prune``.
"""

import base64
import binascii
import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pydantic
import redis.asyncio
from redis.asyncio.client import Pipeline

from dispatcher import errors, tenants
from dispatcher.store import lua
from dispatcher.store.records import SUMMARY_FIELDS, Record, Status, Summary
from wire import events, keys, tenancy

INDEX = keys.INDEX
# A tenant at its limit of evaluations not yet ended: when to look again (one may end soon).
ACTIVE_RETRY_AFTER_SECONDS = 1
_SYNC_CHUNK = 500
record_key = keys.record_key


def status_index(status: Status) -> str:
    return keys.status_index(status.value)


# The statuses an evaluation holds its tenant's capacity in (create_record.lua's KEYS 7..11).
_NOT_ENDED = tuple(s for s in Status if not s.terminal)
# Same order as STATUSES in apply_event.lua.
STATUSES = list(Status)
STATUS_INDEXES = [status_index(s) for s in STATUSES]


def tenant_indexes(tenant: str) -> list[str]:
    """The tenant's index of all its evaluations, then one per status (STATUS_INDEXES' order)."""
    return [keys.tenant_index(tenant), *(keys.tenant_status_index(tenant, s) for s in STATUSES)]


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


def create_keys(record: Record) -> list[str]:
    """KEYS of create_record.lua."""
    tenant, _ = tenancy.split(record.eval_id)
    return [
        record_key(record.eval_id),
        INDEX,
        status_index(record.status),
        keys.tenant_index(tenant),
        keys.tenant_status_index(tenant, record.status.value),
        keys.TENANTS,
        *(keys.tenant_status_index(tenant, s) for s in _NOT_ENDED),
        keys.tenant_bucket(tenant),
    ]


def _indexes_of(tenant: str) -> list[str]:
    return [INDEX, *STATUS_INDEXES, *tenant_indexes(tenant)]


def status_keys(eval_id: str) -> list[str]:
    """KEYS of apply_event.lua: the record, the status indexes, its tenant's status indexes,
    the admitted sets an end leaves."""
    tenant, _ = tenancy.split(eval_id)
    return [
        record_key(eval_id),
        *STATUS_INDEXES,
        *tenant_indexes(tenant)[1:],
        keys.ADMITTED,
        keys.tenant_admitted(tenant),
    ]


def encode_record(record: Record) -> dict[str, str]:
    return {
        name: json.dumps(value, separators=(",", ":"))
        for name, value in record.model_dump(mode="json").items()
        if value is not None
    }


def decode_fields(raw: dict[bytes, bytes]) -> dict[str, Any]:
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def event_args(event: events.Event) -> list[str | int]:
    """ARGV of ``apply_event.lua`` for one event."""
    fields = event.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"v", "seq", "eval_id", "type", "ts", "source", "verified", "stream", "data"},
    )
    args: list[str | int] = [
        event.seq,
        event.type.value,
        event.source,
        "1" if event.verified is True else "0",
        json.dumps(event.ts),
    ]
    for name, value in fields.items():
        args += [name, json.dumps(value, separators=(",", ":"))]
    return args


@dataclasses.dataclass(frozen=True)
class Page:
    records: list[Summary]
    next_cursor: str | None


class Store:
    def __init__(self, client: redis.asyncio.Redis, *, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds

    async def create(
        self,
        record: Record,
        *,
        then: Callable[[Pipeline], None] | None = None,
        limits: tenants.TenantLimits | None = None,
    ) -> str | None:
        """Create ``record`` unless its eval_id exists; None if created, else the existing
        record's request digest. Over its tenant's ``limits``: ``TenantLimitError``, nothing
        written. ``then`` queues more commands into the same round trip (a submission's
        ``accepted``, guarded by the record's existence); if one of those fails, the record is
        removed again (only when it is this call's) and the error raised."""
        nonce = json.dumps(uuid.uuid4().hex)  # JSON text like every other field
        args = self.create_args(record, nonce, limits)
        script_keys = create_keys(record)
        async with self._client.pipeline(transaction=False) as pipe:
            lua.CREATE_RECORD.queue(pipe, script_keys, args)
            if then is not None:
                then(pipe)
            replies = await lua.execute(pipe, raise_on_error=False)
        if isinstance(replies[0], Exception):
            raise replies[0]  # nothing was created
        created, digest, their_nonce = replies[0]
        if int(created) == _OVER_LIMIT:
            raise _limit_error(digest.decode(), their_nonce.decode(), limits)
        ours = bool(int(created)) or their_nonce.decode() == nonce  # a retried call: still ours
        failed = next((r for r in replies[1:] if isinstance(r, Exception)), None)
        if failed is not None:
            if ours:
                await self.remove(record.eval_id)  # no half-created evaluation
            raise failed
        return None if ours else str(json.loads(digest))

    def create_args(
        self, record: Record, nonce: str, limits: tenants.TenantLimits | None = None
    ) -> list[str | int | float]:
        """ARGV of create_record.lua."""
        tenant, _ = tenancy.split(record.eval_id)
        args: list[str | int | float] = [
            self._ttl, record.created_at, record.eval_id, nonce, tenant,
            (limits.active_max or 0) if limits else 0,
            (limits.submissions_per_second or 0) if limits else 0,
            limits.submissions_burst if limits else 1,
        ]  # fmt: skip
        for name, value in encode_record(record).items():
            args += [name, value]
        return args

    async def get(self, eval_id: str) -> Record | None:
        raw = await self._client.hgetall(record_key(eval_id))  # type: ignore[misc]
        return _record(raw)

    async def require(self, eval_id: str) -> Record:
        record = await self.get(eval_id)
        if record is None:
            # As the caller named it: the tenant's prefix is the API's business, not theirs.
            raise errors.NotFoundError(f"no evaluation {tenancy.split(eval_id)[1]!r}")
        return record

    async def set_job_name(self, eval_id: str, job_name: str) -> None:
        # HSETNX: the backend's own `scheduled` event may already have recorded it.
        await self._client.hsetnx(record_key(eval_id), "job_name", json.dumps(job_name))  # type: ignore[misc]

    async def remove(self, eval_id: str) -> None:
        """Undo a creation whose submission the backend refused (nothing else removes)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(record_key(eval_id), keys.eval_stream(eval_id))
            pipe.delete(keys.publish_meta(eval_id))
            for key in _indexes_of(tenancy.split(eval_id)[0]):
                pipe.zrem(key, eval_id)
            await pipe.execute()

    async def apply(self, event: events.Event) -> bool:
        reply = await lua.APPLY_EVENT(self._client, status_keys(event.eval_id), event_args(event))
        return bool(reply)

    async def apply_many(self, batch: Sequence[events.Event]) -> int:
        """Apply events in order in one round trip; how many changed a record."""
        if not batch:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for event in batch:
                lua.APPLY_EVENT.queue(pipe, status_keys(event.eval_id), event_args(event))
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
            await self.apply_many(list(_status_events(entries)))
            if len(entries) < _SYNC_CHUNK:
                break
            start = "(" + entries[-1][0].decode()
        return await self.require(eval_id)

    async def listing(
        self, *, tenant: str | None, status: Status | None, limit: int, cursor: str | None
    ) -> Page:
        """Newest first; ``tenant`` None: every tenant's (an operator's view)."""
        if tenant is None:
            index = INDEX if status is None else status_index(status)
        elif status is None:
            index = keys.tenant_index(tenant)
        else:
            index = keys.tenant_status_index(tenant, status.value)
        ids = await self._page_ids(index, limit + 1, cursor)
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id, _ in ids[:limit]:
                pipe.hmget(record_key(eval_id), list(SUMMARY_FIELDS))
            raws = await pipe.execute()
        found: list[Summary] = []
        expired: list[str] = []
        for (eval_id, _), values in zip(ids, raws, strict=False):
            record = _summary(values)
            if record is None:
                expired.append(eval_id)
            else:
                found.append(record)
        await self._drop_from_indexes(expired)
        more = len(ids) > limit
        return Page(found, encode_cursor(*ids[limit - 1]) if more else None)

    async def _page_ids(
        self, index: str, count: int, cursor: str | None
    ) -> list[tuple[str, float]]:
        if cursor is None:
            rows = await self._client.zrange(
                index, "+inf", "-inf", desc=True, byscore=True, withscores=True, offset=0, num=count
            )
            return [(m.decode(), s) for m, s in rows]
        score, last_id = decode_cursor(cursor)
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
                    for key in _indexes_of(tenancy.split(eval_id)[0]):
                        pipe.zrem(key, eval_id)
                await pipe.execute()

    async def prune(self, now: float | None = None) -> None:
        """Drop index entries older than the record TTL (their records have expired)."""
        horizon = (time.time() if now is None else now) - self._ttl
        tenants = {t.decode() for t in await self._client.smembers(keys.TENANTS)}  # type: ignore[misc]
        async with self._client.pipeline(transaction=False) as pipe:
            for key in [INDEX, *STATUS_INDEXES, *(k for t in tenants for k in tenant_indexes(t))]:
                pipe.zremrangebyscore(key, "-inf", f"({horizon!r}")
            await pipe.execute()


def _summary(values: list[bytes | None]) -> Summary | None:
    raw = {name: value for name, value in zip(SUMMARY_FIELDS, values, strict=True) if value}
    if not raw:
        return None
    try:
        return Summary.model_validate({k: json.loads(v) for k, v in raw.items()})
    except (pydantic.ValidationError, ValueError):
        return None  # as ``_record``: a junk hash counts as absent


def _record(raw: dict[bytes, bytes]) -> Record | None:
    if not raw:
        return None
    try:
        return Record.model_validate(decode_fields(raw))
    except (pydantic.ValidationError, ValueError):
        # A half-written hash cannot exist (scripts write whole records); treat junk as absent.
        return None


def _status_events(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> Iterable[events.Event]:
    for _, fields in entries:
        raw = fields.get(keys.EVENT_FIELD.encode(), b"")
        if b'"type":"output"' in raw:
            continue
        try:
            yield events.parse(raw)
        except pydantic.ValidationError:
            continue


def encode_cursor(eval_id: str, score: float) -> str:
    return base64.urlsafe_b64encode(f"{score!r} {eval_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, eval_id = text.split(" ", 1)
        return float(score), eval_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidRequestError(
            "invalid cursor",
            details=[{"field": "cursor", "message": "not a cursor from a listing"}],
        ) from None
