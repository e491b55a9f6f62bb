"""The reconciler: watches crucible's Jobs and Pods and publishes the kubelet's verdict.

Per kind (jobs, pods): list, then watch from the list's resourceVersion; list again on 410 Gone,
on any watch error (after a backoff) and every ``resync_interval_seconds``. The blocking watch
runs in a thread and hands each event to the loop; one coroutine evaluates the evaluations that
changed (``verdicts.decide``) and publishes through the one publish script:

- ``pending`` with the reason (token ``pending:<reason>``) while a pod waits on an image or node;
- the verified terminal event (token ``verdict``) as soon as the main container terminated, so
  before the Job's TTL removes the pod; after an error verdict on a stuck pod, the Job is
  deleted;
- a Job that vanished: ``cancelled`` if a cancel was requested, else ``error`` (unless the
  sidecar already published an end, which then stands unverified).

Each Job listing also sweeps orphans: Jobs of this instance older than
``orphan_min_age_seconds`` whose evaluation has no record in the status store. Before that, and
every tick, it checks that Redis kept its data; if Redis lost it, the records of the Jobs it
knows are rebuilt from the Jobs (``rebuild``) instead of their Jobs being swept.
"""

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import redis.asyncio
import redis.exceptions
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from dispatcher import errors
from dispatcher.backends.kube import client
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import names
from dispatcher.backends.kube.watch import cancels, recovery, verdicts
from dispatcher.store import connect, publish
from dispatcher.store.store import Store
from wire import events

log = logging.getLogger(__name__)

VERDICT_TOKEN = "verdict"
# The reason of a verdict the pod never reported itself (its channel was lost: the wrapper died,
# or the sidecar restarted and trusts no new connection) and the kubelet gave none.
NO_REPORT_REASON = "no exit report from the wrapper; verdict from the kubelet"
_BACKOFF_INITIAL_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 30.0
_WATCH_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class Reconciler:
    def __init__(
        self,
        config: kube_config.KubernetesConfig,
        kube: client.KubeClient,
        redis_client: redis.asyncio.Redis,
        publisher: publish.Publisher,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``store``: where records are rebuilt after Redis lost its data (None: not done)."""
        self._config = config
        self._recovery = recovery.Recovery(config, kube, redis_client, store, clock=clock)
        self._kube = kube
        self._redis = redis_client
        self._publisher = publisher
        self._clock = clock
        self._selector = names.selector(config.instance)
        self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="crucible-watch")
        self._jobs: dict[str, dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        self._jobs_gone: set[str] = set()
        self._pods_gone: set[str] = set()
        self._done: set[str] = set()
        self._pending: dict[str, str] = {}
        self._lingering: set[str] = set()
        # Main container ended, sidecar still publishing: verdict held back (see _decide).
        self._awaiting_sidecar: set[str] = set()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.listed = {"jobs": asyncio.Event(), "pods": asyncio.Event()}
        """Set once each kind has been listed (tests and readiness wait on them)."""

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._follow("jobs"), name="reconciler-jobs")
                group.create_task(self._follow("pods"), name="reconciler-pods")
                group.create_task(self._evaluate_forever(), name="reconciler-verdicts")
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _follow(self, kind: client.Kind) -> None:
        backoff = _BACKOFF_INITIAL_SECONDS
        while True:
            try:
                listing = await self._kube.list_objects(kind, self._selector)
            except errors.DispatcherError as e:
                log.warning("listing %s failed, retrying in %.1fs: %s", kind, backoff, e.message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)
                continue
            self._replace(kind, listing.items)
            self.listed[kind].set()
            if kind == "jobs":
                await self._sweep_orphans(listing.items)
            if await self._watch_until_resync(kind, listing.resource_version):
                backoff = _BACKOFF_INITIAL_SECONDS
            else:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_SECONDS)

    async def _watch_until_resync(self, kind: client.Kind, version: str) -> bool:
        """Watch until the next resync is due; False if a watch failed (back off, relist)."""
        loop = asyncio.get_running_loop()
        resync_at = loop.time() + self._config.resync_interval_seconds
        while loop.time() < resync_at:
            try:
                version = await self._watch_once(kind, version)
            except client.WatchExpiredError:
                log.info("%s watch expired (410), listing again", kind)
                return True
            except _WATCH_ERRORS as e:
                log.warning("%s watch failed: %s", kind, errors.upstream_text(e))
                return False
        return True

    async def _watch_once(self, kind: client.Kind, version: str) -> str:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        timeout = self._config.watch_timeout_seconds

        def consume() -> str:
            last = version
            for event in self._kube.watch(kind, self._selector, version, timeout):
                if stop.is_set():
                    break
                obj = event.get("object") or {}
                last = (obj.get("metadata") or {}).get("resourceVersion") or last
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    loop.call_soon_threadsafe(self._on_event, kind, event["type"], obj)
            return last

        try:
            return await loop.run_in_executor(self._pool, consume)
        finally:
            stop.set()

    def _on_event(self, kind: client.Kind, change: str, obj: dict[str, Any]) -> None:
        eval_id = names.eval_id_of(obj)
        if eval_id is None:
            return
        if kind == "jobs":
            if change == "DELETED":
                self._jobs.pop(eval_id, None)
                self._jobs_gone.add(eval_id)
            else:
                self._jobs[eval_id] = obj
        else:
            # A deleted pod's last state is evaluated once, then dropped.
            self._pods[eval_id] = obj
            if change == "DELETED":
                self._pods_gone.add(eval_id)
        self._mark(eval_id)

    def _replace(self, kind: client.Kind, items: list[dict[str, Any]]) -> None:
        fresh = {eid: obj for obj in items if (eid := names.eval_id_of(obj)) is not None}
        if kind == "jobs":
            # Deleted while no watch was looking.
            self._jobs_gone.update(self._jobs.keys() - fresh.keys())
            for eval_id in self._jobs.keys() - fresh.keys():
                self._mark(eval_id)
            self._jobs = fresh
        else:
            self._pods = fresh
        for eval_id in fresh:
            self._mark(eval_id)

    def _mark(self, eval_id: str) -> None:
        self._dirty.add(eval_id)
        self._wake.set()

    async def _evaluate_forever(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self._config.tick_seconds):
                    await self._wake.wait()
            except TimeoutError:
                # Pending grace and plain sidecars' linger run out without any new event.
                self._dirty.update(self._pending, self._lingering, self._awaiting_sidecar)
            self._wake.clear()
            try:
                await self._restore_if_redis_lost(at_most_every=self._config.tick_seconds)
            except (redis.exceptions.RedisError, OSError) as e:
                log.warning("cannot check Redis for lost data: %s", e)
            dirty, self._dirty = self._dirty, set()
            for eval_id in dirty:
                try:
                    await self._evaluate(eval_id)
                except (redis.exceptions.RedisError, OSError, errors.DispatcherError) as e:
                    log.warning("verdict for %s postponed: %s", eval_id, errors.upstream_text(e))
                    self._dirty.add(eval_id)
                except Exception:
                    # One malformed object must not stop the verdicts of every evaluation.
                    log.exception("cannot evaluate %s; waiting for its next change", eval_id)

    async def _evaluate(self, eval_id: str) -> None:
        gone = eval_id in self._jobs_gone
        job = self._jobs.get(eval_id)
        if eval_id not in self._done and (job is not None or gone):
            await self._decide(eval_id, job, gone=gone)
        if eval_id in self._done and job is not None and not gone:
            await self._end_lingering_sidecar(eval_id, job)
        if gone:
            self._forget(eval_id)
        elif eval_id in self._pods_gone:
            self._pods.pop(eval_id, None)
            self._pods_gone.discard(eval_id)

    async def _decide(self, eval_id: str, job: dict[str, Any] | None, *, gone: bool) -> None:
        cancel = await cancels.requested(self._redis, eval_id)
        verdict = verdicts.decide(
            job, self._pods.get(eval_id), now=self._clock(), config=self._config,
            cancel_requested=cancel,
        )  # fmt: skip
        if verdict is None:
            return
        if not verdict.terminal:
            if self._pending.get(eval_id) != verdict.reason:
                await self._publish(eval_id, verdict, token=f"pending:{verdict.reason}")
                self._pending[eval_id] = verdict.reason or ""
            return
        if not cancel and await self._sidecar_still_reporting(eval_id):
            self._awaiting_sidecar.add(eval_id)  # re-evaluated on the next tick at the latest
            return
        self._awaiting_sidecar.discard(eval_id)
        vanished = gone and verdict.type == events.EventType.ERROR and job is None
        reported = await self._sidecar_ended(eval_id)
        if not reported and not cancel and verdict.reason is None:
            verdict = dataclasses.replace(verdict, reason=NO_REPORT_REASON)
        if not (vanished and reported):
            await self._publish(eval_id, verdict, token=VERDICT_TOKEN)
        self._done.add(eval_id)
        self._pending.pop(eval_id, None)
        if verdict.delete_job and job is not None:
            await self._kube.delete_job(job["metadata"]["name"])

    async def _sidecar_still_reporting(self, eval_id: str) -> bool:
        pod = self._pods.get(eval_id)
        wait = self._config.sidecar_verdict_wait_seconds
        if not verdicts.awaits_sidecar(pod, now=self._clock(), wait_seconds=wait):
            return False
        return not await self._sidecar_ended(eval_id)

    async def _sidecar_ended(self, eval_id: str) -> bool:
        found = self._redis.hexists(connect.keyspace(self._redis).publish_meta(eval_id), "terminal")
        return bool(await cast(Awaitable[bool], found))

    async def _publish(self, eval_id: str, verdict: verdicts.Verdict, *, token: str) -> None:
        event = events.Event(
            eval_id=eval_id,
            type=verdict.type,
            source="dispatcher",
            reason=verdict.reason,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            duration_seconds=verdict.duration_seconds,
            verified=True if verdict.terminal else None,
        )
        await self._publisher.publish(event, token=token)
        log.info("%s: %s %s", eval_id, verdict.type.value, verdict.reason or "")

    async def _end_lingering_sidecar(self, eval_id: str, job: dict[str, Any]) -> None:
        """A plain sidecar waits for the wrapper's exit record, which an OOM kill never writes:
        once the verdict is out and the linger has passed, the Job is deleted to end the pod."""
        pod = self._pods.get(eval_id)
        linger = self._config.plain_sidecar_linger_seconds
        if pod is None or not verdicts.sidecar_lingers(pod):
            self._lingering.discard(eval_id)
        elif verdicts.sidecar_lingers(pod, now=self._clock(), linger_seconds=linger):
            log.info("%s: the plain sidecar outlived its main container; deleting the Job", eval_id)
            self._lingering.discard(eval_id)
            await self._kube.delete_job(job["metadata"]["name"])
        else:
            self._lingering.add(eval_id)

    def _forget(self, eval_id: str) -> None:
        self._lingering.discard(eval_id)
        self._awaiting_sidecar.discard(eval_id)
        for known in (self._jobs_gone, self._pods_gone, self._done):
            known.discard(eval_id)
        self._pods.pop(eval_id, None)
        self._pending.pop(eval_id, None)

    async def _restore_if_redis_lost(self, *, at_most_every: float = 0.0) -> None:
        if not self.listed["jobs"].is_set():
            return
        for eval_id in await self._recovery.restore_if_redis_lost(
            self._jobs, at_most_every=at_most_every
        ):
            # Decided before the loss: decide again, onto the rebuilt record.
            self._done.discard(eval_id)
            self._pending.pop(eval_id, None)
            self._mark(eval_id)

    async def _sweep_orphans(self, jobs: list[dict[str, Any]]) -> None:
        try:
            await self._restore_if_redis_lost()
        except (redis.exceptions.RedisError, OSError) as e:
            log.warning("orphan sweep skipped: %s", e)
            return
        await self._recovery.sweep_orphans(jobs)
