"""Records rebuilt from Jobs after Redis lost its data (a restart without persistence).

Redis is the only store of records, but every live evaluation also exists as a Job whose
annotations and main container say what it is (``instrument``). The reconciler notices the loss
by a marker key that only a Redis without data lacks (``wire.keys.EPOCH``), and rebuilds the
record of each Job it knows from the Job: status ``scheduled``, then whatever the evaluation's
own stream holds by then (the sidecar's events, which it kept sending), then the kubelet's
verdict as usual. What is lost: the request digest (a retried submit of a rebuilt id conflicts),
the text of a ``code`` evaluation (the command shows the file it ran from), and evaluations that
were still queued, which have no Job to rebuild from.
"""

import logging
from typing import Any

import redis.asyncio

from dispatcher.backends.kube.jobs import names
from dispatcher.backends.kube.watch import verdicts
from dispatcher.store import records
from dispatcher.store.store import Store
from wire import keys, tenancy

log = logging.getLogger(__name__)

# The request digest of a rebuilt record: no request hashes to it.
REBUILT_DIGEST = "rebuilt-from-job"


def record_from_job(job: dict[str, Any]) -> records.Record | None:
    """The record a Job stands for; None if it lacks what a record needs (not crucible's)."""
    meta = job.get("metadata") or {}
    notes: dict[str, str] = meta.get("annotations") or {}
    eval_id = notes.get(names.ANNOTATION_EVAL_ID)
    created_at = verdicts.parse_timestamp(notes.get(names.ANNOTATION_CREATED_AT))
    main_name = notes.get(names.ANNOTATION_MAIN_CONTAINER)
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    main = next((c for c in pod.get("containers") or [] if c.get("name") == main_name), None)
    if not eval_id or created_at is None or main is None:
        return None
    try:
        timeout = float(notes.get(names.ANNOTATION_TIMEOUT, ""))
    except ValueError:
        return None
    wrapped = list(main.get("command") or [])
    command = wrapped[wrapped.index("--") + 1 :] if "--" in wrapped else wrapped
    limits = (main.get("resources") or {}).get("limits") or {}
    user_labels = {**(meta.get("labels") or {}), **notes}
    return records.Record(
        eval_id=eval_id,
        status=records.Status.SCHEDULED,
        backend="kubernetes",
        image=str(main.get("image", "")),
        command=[str(part) for part in command],
        timeout_seconds=timeout,
        resources=records.Resources(
            cpu=str(limits.get("cpu", "")), memory=str(limits.get("memory", ""))
        ),
        labels={
            key.removeprefix(names.USER_PREFIX): str(value)
            for key, value in user_labels.items()
            if key.startswith(names.USER_PREFIX)
        },
        created_at=created_at,
        job_name=str(meta.get("name", "")),
        request_digest=REBUILT_DIGEST,
    )


async def mark_data_kept(client: redis.asyncio.Redis) -> None:
    """Set the marker whose absence says Redis lost its data (after records are rebuilt)."""
    await client.set(keys.EPOCH, "1")


async def restore(client: redis.asyncio.Redis, store: Store, job: dict[str, Any]) -> bool:
    """Rebuild the record of ``job`` if it has none; True if it did. An active Job takes its
    admission slot again, so the limit holds for what still runs."""
    record = record_from_job(job)
    if record is None:
        return False
    if await store.create(record) is not None:
        return False  # the record exists
    log.warning("rebuilt the record of %s from its Job %s", record.eval_id, record.job_name)
    if not _finished(job):
        tenant, _ = tenancy.split(record.eval_id)
        async with client.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.ADMITTED, {record.eval_id: record.created_at})
            pipe.zadd(keys.tenant_admitted(tenant), {record.eval_id: record.created_at})
            await pipe.execute()
    await store.sync(record.eval_id)  # the events that arrived while it had no record
    return True


def _finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("status") == "True" and c.get("type") in ("Complete", "Failed") for c in conditions
    )
