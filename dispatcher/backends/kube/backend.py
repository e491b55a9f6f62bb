"""The Kubernetes backend: one Job per evaluation, watched by the reconciler.

``submit`` renders the operator's template, instruments it and creates the Job from that plain
dict, then publishes ``scheduled``. The Job's name is a function of the ``eval_id``, so a
retried submit meets AlreadyExists (409) and is idempotent. ``cancel`` writes a tombstone
before deleting the Job: a submit that raced it sees the tombstone right after its create and
deletes the Job it made, so no Job outlives a cancel.
"""

import asyncio
import contextlib
import datetime
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio
import redis.exceptions

from dispatcher import errors
from dispatcher.api import ingest
from dispatcher.backends import base
from dispatcher.backends.kube import client, leader
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.admission import admitter, queue
from dispatcher.backends.kube.jobs import instrument, names, templates
from dispatcher.backends.kube.watch import cancels, reconciler
from dispatcher.store import publish, records
from dispatcher.store.store import Store
from wire import events
from wire import limits as wire_limits

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
# Used once at startup to try the template end to end.
_PROBE = base.Submission(
    eval_id="template-check",
    command=["python", "-c", "pass"],
    image="example.invalid/executor:latest",
    timeout_seconds=1.0,
    resources=records.Resources(cpu="100m", memory="64Mi"),
    env={"EXAMPLE": "1"},
    labels={},
)


def rfc3339(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        config: kube_config.KubernetesConfig,
        *,
        redis_client: redis.asyncio.Redis,
        publisher: publish.Publisher,
        link: ingest.SidecarLink,
        kube: client.KubeClient | None = None,
        sidecar_env: Mapping[str, str] | None = None,
        tenant_caps: tuple[int, dict[str, int]] = (0, {}),
        record_ttl_seconds: int = wire_limits.DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``redis_client`` and ``publisher`` are the dispatcher's own; ``link`` gives each
        sidecar its evaluation's ingest credential; ``kube`` defaults to a client built from
        ``config`` (in-cluster or kubeconfig); ``sidecar_env`` adds ``CRUCIBLE_SIDECAR_*``
        settings (log level) to every sidecar; ``tenant_caps``: each tenant's most admitted
        evaluations (``tenants.TenantsConfig.running_caps``); ``record_ttl_seconds``: of the
        records the reconciler rebuilds from Jobs after Redis lost its data."""
        self._config = config
        self._record_ttl_seconds = record_ttl_seconds
        self._redis = redis_client
        self._publisher = publisher
        self._kube = kube or client.KubeClient(config)
        self._clock = clock
        self._sidecar_env = dict(sidecar_env or {})
        self._link = link
        self._template: templates.JobTemplate | None = None
        self._reconciler: reconciler.Reconciler | None = None
        # Every replica takes submissions; only the Lease's holder runs the reconciler.
        self._elector = leader.Elector.from_config(self._kube, config)
        self._task: asyncio.Task[None] | None = None
        self._submitting: set[str] = set()
        limits = queue.Limits(config.max_running, config.max_queued, tenant_caps)
        self._queue = queue.AdmissionQueue(redis_client, limits, clock=clock)
        self._admitter = admitter.Admitter(
            self._queue, self._launch, self._fail, tick_seconds=config.admission_tick_seconds
        )
        self._admitting: asyncio.Task[None] | None = None

    @property
    def reconciler(self) -> reconciler.Reconciler | None:
        """This replica's reconciler while it leads, else None."""
        return self._reconciler if self._elector.is_leader else None

    @property
    def is_leader(self) -> bool:
        return self._elector.is_leader

    def load_template(self) -> templates.JobTemplate:
        """Load the template and try it on a probe submission; ``errors.TemplateError`` if it
        cannot make a Job (the dispatcher must not start with a broken template)."""
        template = templates.load(
            self._config.job_template_path, main_container=self._config.main_container
        )
        try:
            manifest(template, _PROBE, self._config, now=0.0)
        except errors.InvalidRequestError as e:
            raise errors.TemplateError(
                f"{template.source}: fails on a valid submission: {e.message} {e.details}"
            ) from e
        return template

    async def start(self) -> None:
        self._template = self.load_template()
        await self._kube.open()
        self._admitting = asyncio.create_task(self._admitter.run(), name="kube-admission")
        self._task = asyncio.create_task(self._elector.run(self._lead), name="kube-leader")
        # A replica that finds the Lease free leads before it serves (bounded by the attempt).
        attempted = asyncio.ensure_future(self._elector.attempted.wait())
        await asyncio.wait({attempted, self._task}, return_when=asyncio.FIRST_COMPLETED)
        attempted.cancel()

    def _lead(self) -> Awaitable[None]:
        """Called on gaining the Lease: a fresh reconciler for the term (it lists everything)."""
        self._reconciler = reconciler.Reconciler(
            self._config,
            self._kube,
            self._redis,
            self._publisher,
            store=Store(self._redis, ttl_seconds=self._record_ttl_seconds),
            clock=self._clock,
        )
        return self._reconciler.run()

    async def close(self) -> None:
        if self._admitting is not None:
            self._admitting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._admitting
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._kube.close()

    async def submit(self, submission: base.Submission) -> base.Scheduled:
        """Queue it (``queued`` with its position) and wake the admitter; the Job is created
        when a slot is free. What the template cannot carry is refused here (422)."""
        self._manifest(submission)
        eval_id = submission.eval_id
        job_name = names.job_name(eval_id)
        try:
            if await cancels.requested(self._redis, eval_id):
                return base.Scheduled(job_name=job_name)  # cancelled before it was queued
            position = await self._queue.enqueue(submission)
            await self._publisher.publish(
                events.Event(
                    eval_id=eval_id,
                    type=events.EventType.QUEUED,
                    source="dispatcher",
                    position=position,
                ),
                token="queued",
            )
        except _REDIS_ERRORS as e:
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._queue.withdraw(eval_id)  # no Job may start for this record
            raise errors.BackendUnavailableError(f"cannot queue in Redis: {e}") from e
        self._admitter.wake()
        return base.Scheduled(job_name=job_name)

    @property
    def queue_depth(self) -> int:
        """Evaluations waiting to start (the shared queue's, as last seen; a metrics gauge)."""
        return self._admitter.depth[0]

    @property
    def running(self) -> int:
        """Evaluations admitted and not yet ended, all replicas'."""
        return self._admitter.depth[1]

    def evaluation_ended(self, eval_id: str) -> None:
        """An end was applied (its admission slot freed): start the next."""
        self._admitter.wake()

    async def queue_position(self, eval_id: str) -> int | None:
        return await self._queue.position(eval_id)

    def _manifest(self, submission: base.Submission) -> dict[str, Any]:
        if self._template is None:
            raise errors.BackendUnavailableError("the Kubernetes backend is not started")
        return manifest(
            self._template,
            submission,
            self._config,
            now=self._clock(),
            sidecar_env={**self._sidecar_env, **self._link.env(submission.eval_id)},
        )

    async def _launch(self, admitted: queue.Admitted) -> None:
        """Create the Job of an evaluation the queue admitted, unless it was cancelled."""
        body = self._manifest(admitted.submission)
        job_name = str(body["metadata"]["name"])
        eval_id = admitted.submission.eval_id
        self._submitting.add(eval_id)
        try:
            if await self._cancelled(eval_id):
                await self._queue.release([eval_id])  # its cancelled end may be applied already
                return
            if not await self._kube.create_job(body):
                await self._check_same_evaluation(job_name, eval_id)
            if await self._cancelled(eval_id):
                await self._kube.delete_job(job_name)
                await self._queue.release([eval_id])
                return
            await self._publish_scheduled(eval_id, job_name)
        finally:
            self._submitting.discard(eval_id)

    async def _fail(self, eval_id: str, reason: str) -> None:
        event = events.Event(
            eval_id=eval_id, type=events.EventType.ERROR, source="dispatcher", reason=reason
        )
        await self._publisher.publish(event, token="admission-error")

    async def cancel(self, eval_id: str) -> bool:
        try:
            await cancels.remember(self._redis, eval_id, self._config.cancel_tombstone_seconds)
            if await self._queue.withdraw(eval_id):
                return True
        except _REDIS_ERRORS as e:
            raise errors.BackendUnavailableError(f"cannot record the cancel: {e}") from e
        deleted = await self._kube.delete_job(names.job_name(eval_id))
        return deleted or eval_id in self._submitting

    async def ready(self) -> bool:
        if self._task is None or self._task.done():
            return False
        return await self._kube.ping()

    async def _cancelled(self, eval_id: str) -> bool:
        try:
            return await cancels.requested(self._redis, eval_id)
        except _REDIS_ERRORS as e:
            raise errors.BackendUnavailableError(f"Redis unavailable: {e}") from e

    async def _check_same_evaluation(self, job_name: str, eval_id: str) -> None:
        """AlreadyExists: fine if the Job is this evaluation's (a retry), else a conflict."""
        existing = await self._kube.get_job(job_name)
        if existing is not None and names.eval_id_of(existing) != eval_id:
            raise errors.ConflictError(f"Job {job_name} exists for another evaluation")

    async def _publish_scheduled(self, eval_id: str, job_name: str) -> None:
        event = events.Event(
            eval_id=eval_id, type=events.EventType.SCHEDULED, source="dispatcher", job_name=job_name
        )
        try:
            await self._publisher.publish(event, token="scheduled")
        except _REDIS_ERRORS as e:
            # Nothing half-made: without the event nobody would hear of this Job.
            await self._kube.delete_job(job_name)
            raise errors.BackendUnavailableError(f"cannot publish to Redis: {e}") from e


def manifest(
    template: templates.JobTemplate,
    submission: base.Submission,
    config: kube_config.KubernetesConfig,
    *,
    now: float,
    sidecar_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job to create for ``submission``: rendered, then instrumented (pure)."""
    eval_id = submission.eval_id
    created_at = rfc3339(now)
    program = base.code_of(submission.command)
    command = list(submission.command)
    if program is not None:
        command = [*base.CODE_COMMAND[:-1], instrument.PROGRAM_PATH]
    values = templates.Values(
        job_name=names.job_name(eval_id),
        eval_id=eval_id,
        eval_label=names.eval_label(eval_id),
        image=submission.image,
        command=command,
        timeout_seconds=math.ceil(submission.timeout_seconds),
        cpu=submission.resources.cpu,
        memory=submission.resources.memory,
        env=dict(submission.env),
        created_at=created_at,
    )
    target = instrument.Target(
        eval_id=eval_id,
        job_name=values.job_name,
        timeout_seconds=submission.timeout_seconds,
        labels=submission.labels,
        created_at=created_at,
        main_container=template.main_container,
        program_path=None if program is None else instrument.PROGRAM_PATH,
    )
    return instrument.instrument(template.render(values), target, config, sidecar_env=sidecar_env)
