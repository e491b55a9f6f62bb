"""What the reconciler does about Jobs whose evaluation has no record.

Two causes, told apart by a marker key that only a Redis without data lacks (``wire.keys.EPOCH``):
- Redis lost its data (restarted without persistence): every Job the reconciler knows gets its
  record rebuilt from the Job (``rebuild``), and only then is the marker set again, so a failure
  part way is retried whole;
- Redis kept its data: a Job older than ``orphan_min_age_seconds`` with no record is an orphan
  (its record was removed or expired) and is deleted.
"""

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio
import redis.exceptions

from dispatcher import errors
from dispatcher.backends.kube import client
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import names
from dispatcher.backends.kube.watch import rebuild, verdicts
from dispatcher.store import connect
from dispatcher.store.store import Store
from wire import keys

log = logging.getLogger(__name__)


class Recovery:
    def __init__(
        self,
        config: kube_config.KubernetesConfig,
        kube: client.KubeClient,
        redis_client: redis.asyncio.Redis,
        store: Store | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``store``: where records are rebuilt (None: never rebuilt)."""
        self._config = config
        self._kube = kube
        self._redis = redis_client
        self._store = store
        self._clock = clock
        self._checked_at = -math.inf

    async def restore_if_redis_lost(
        self, jobs: Mapping[str, dict[str, Any]], *, at_most_every: float = 0.0
    ) -> list[str]:
        """The evaluations whose records were rebuilt from ``jobs`` (by eval_id), if Redis lost
        its data; checked at most every ``at_most_every`` seconds."""
        if self._store is None:
            return []
        now = time.monotonic()
        if now - self._checked_at < at_most_every:
            return []
        self._checked_at = now
        if await self._redis.exists(keys.EPOCH):
            return []
        restored = [
            eval_id
            for eval_id, job in list(jobs.items())
            if await rebuild.restore(self._redis, self._store, job)
        ]
        await rebuild.mark_data_kept(self._redis)
        return restored

    async def sweep_orphans(self, jobs: list[dict[str, Any]]) -> None:
        now = self._clock()
        old = [
            (eval_id, job)
            for job in jobs
            if (eval_id := names.eval_id_of(job)) is not None
            and now - (_created(job) or now) > self._config.orphan_min_age_seconds
        ]
        if not old:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for eval_id, _ in old:
                    pipe.exists(connect.keyspace(self._redis).record(eval_id))
                exists = await pipe.execute()
            for (eval_id, job), known in zip(old, exists, strict=True):
                if not known:
                    log.warning(
                        "deleting orphan Job %s (no record for %s)",
                        job["metadata"]["name"],
                        eval_id,
                    )
                    await self._kube.delete_job(job["metadata"]["name"])
        except (redis.exceptions.RedisError, OSError, errors.DispatcherError) as e:
            log.warning("orphan sweep skipped: %s", errors.upstream_text(e))


def _created(obj: dict[str, Any]) -> float | None:
    return verdicts.parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
