"""The Kubernetes backend's admission queue, in Redis, shared by every dispatcher replica.

A submission is queued (``enqueue``); ``admit`` takes the next ones round robin over the
tenants while fewer than ``max_running`` evaluations (and a tenant's ``running_max``) are
admitted and not yet ended; an end frees the slot in the same script that records it
(``apply_event.lua``). Each step is one Lua script (``wire/admission``), so replicas never
admit one evaluation twice nor past a limit. Keys: ``wire.keys`` (``crucible:{queue}:...``).
"""

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio

from dispatcher import errors
from dispatcher.backends import base
from dispatcher.store import connect, lua, records
from wire import keys, tenancy

# A full queue: one ends every few seconds at most; the client may try again after this.
FULL_RETRY_AFTER_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class Admitted:
    """An evaluation taken from the queue: its Job is to be created now."""

    submission: base.Submission
    arrival: int


@dataclasses.dataclass(frozen=True)
class Limits:
    max_running: int
    max_queued: int
    # The default per-tenant cap and the tenants that differ (``TenantsConfig.running_caps``).
    tenant_caps: tuple[int, dict[str, int]] = (0, {})


def encode(submission: base.Submission) -> str:
    return json.dumps(
        {**dataclasses.asdict(submission), "resources": submission.resources.model_dump()},
        separators=(",", ":"),
    )


def decode(text: str | bytes) -> base.Submission:
    fields: dict[str, Any] = json.loads(text)
    fields["resources"] = records.Resources(**fields["resources"])
    return base.Submission(**fields)


class AdmissionQueue:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._limits = limits
        self._clock = clock

    async def enqueue(self, submission: base.Submission) -> int:
        """Queue it; its position (1 = next). ``errors.QueueFullError`` past ``max_queued``."""
        tenant, _ = tenancy.split(submission.eval_id)
        position = await lua.ENQUEUE(
            self._client,
            [
                keys.QUEUE_ORDER,
                keys.QUEUE_ARRIVALS,
                keys.QUEUE_TURNS,
                keys.QUEUE_SPECS,
                keys.tenant_queue(tenant),
            ],
            [
                submission.eval_id,
                tenant,
                encode(submission),
                self._limits.max_queued,
                keys.QUEUE_TENANT_PREFIX,
            ],
        )
        if not position:
            raise errors.QueueFullError(
                f"{self._limits.max_queued} evaluations are already waiting to start; retry later",
                retry_after_seconds=FULL_RETRY_AFTER_SECONDS,
            )
        return int(position)

    async def admit(self, most: int) -> list[Admitted]:
        """Take up to ``most`` evaluations to start, in the order they are to start."""
        default_cap, caps = self._limits.tenant_caps
        reply = await lua.ADMIT(
            self._client,
            [keys.QUEUE_ORDER, keys.QUEUE_TURNS, keys.QUEUE_SPECS, keys.ADMITTED],
            [
                self._limits.max_running,
                repr(self._clock()),
                most,
                keys.QUEUE_TENANT_PREFIX,
                keys.ADMITTED_TENANT_PREFIX,
                default_cap,
                *(x for pair in caps.items() for x in pair),
            ],
        )
        return [
            Admitted(submission=decode(reply[i + 1]), arrival=int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]

    async def withdraw(self, eval_id: str) -> bool:
        """Take a queued evaluation out (a cancel); False if it is not queued."""
        tenant, _ = tenancy.split(eval_id)
        taken = await lua.WITHDRAW(
            self._client,
            [keys.QUEUE_ORDER, keys.QUEUE_TURNS, keys.QUEUE_SPECS, keys.tenant_queue(tenant)],
            [eval_id, tenant],
        )
        return bool(taken)

    async def requeue(self, admitted: Admitted) -> None:
        """Back where it was, first of its tenant's and its tenant served next; slot freed."""
        eval_id = admitted.submission.eval_id
        tenant, _ = tenancy.split(eval_id)
        await lua.REQUEUE(
            self._client,
            [
                keys.QUEUE_ORDER,
                keys.QUEUE_TURNS,
                keys.QUEUE_SPECS,
                keys.tenant_queue(tenant),
                keys.ADMITTED,
                keys.tenant_admitted(tenant),
            ],
            [eval_id, tenant, encode(admitted.submission), admitted.arrival],
        )

    async def release(self, eval_ids: list[str]) -> None:
        """Free the slots of admitted evaluations that will not run (their end is recorded
        elsewhere, or their record is gone)."""
        if not eval_ids:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id in eval_ids:
                pipe.zrem(keys.ADMITTED, eval_id)
                pipe.zrem(keys.tenant_admitted(tenancy.split(eval_id)[0]), eval_id)
            await pipe.execute()

    async def position(self, eval_id: str) -> int | None:
        tenant, _ = tenancy.split(eval_id)
        reply = await lua.QUEUE_POSITION(
            self._client, [keys.QUEUE_TURNS], [eval_id, tenant, keys.QUEUE_TENANT_PREFIX]
        )
        return None if reply is None else int(reply)

    async def depth(self) -> tuple[int, int]:
        """(queued, admitted and not yet ended)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.QUEUE_ORDER)
            pipe.zcard(keys.ADMITTED)
            queued, admitted = await pipe.execute()
        return int(queued), int(admitted)

    async def stale(self) -> list[str]:
        """Admitted evaluations whose record has ended or is gone: their end was applied while
        the slot could not be freed (a record that expired, Redis data lost), so free them."""
        admitted = [m.decode() for m in await self._client.zrange(keys.ADMITTED, 0, -1)]
        if not admitted:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for eval_id in admitted:
                pipe.hget(connect.keyspace(self._client).record(eval_id), "status")
            statuses = await pipe.execute()
        ended = {s.value for s in records.TERMINAL_STATUSES}
        return [
            eval_id
            for eval_id, status in zip(admitted, statuses, strict=True)
            if status is None or json.loads(status) in ended
        ]
