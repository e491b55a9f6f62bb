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
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio
import redis.exceptions

from dispatcher import errors
from dispatcher.api import ingest
from dispatcher.backends import base
from dispatcher.backends.kube import cancels, client, instrument, names, reconciler, templates
from dispatcher.backends.kube import config as kube_config
from dispatcher.store import publish, records
from wire import events

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``redis_client`` and ``publisher`` are the dispatcher's own; ``link`` gives each
        sidecar its evaluation's ingest credential; ``kube`` defaults to a client built from
        ``config`` (in-cluster or kubeconfig); ``sidecar_env`` adds ``CRUCIBLE_SIDECAR_*``
        settings (log level) to every sidecar."""
        self._config = config
        self._redis = redis_client
        self._publisher = publisher
        self._kube = kube or client.KubeClient(config)
        self._clock = clock
        self._sidecar_env = dict(sidecar_env or {})
        self._link = link
        self._template: templates.JobTemplate | None = None
        self._reconciler: reconciler.Reconciler | None = None
        self._task: asyncio.Task[None] | None = None
        self._submitting: set[str] = set()

    @property
    def reconciler(self) -> reconciler.Reconciler | None:
        return self._reconciler

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
        self._reconciler = reconciler.Reconciler(
            self._config, self._kube, self._redis, self._publisher, clock=self._clock
        )
        self._task = asyncio.create_task(self._reconciler.run(), name="kube-reconciler")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._kube.close()

    async def submit(self, submission: base.Submission) -> base.Scheduled:
        if self._template is None:
            raise errors.BackendUnavailableError("the Kubernetes backend is not started")
        body = manifest(
            self._template,
            submission,
            self._config,
            now=self._clock(),
            sidecar_env={**self._sidecar_env, **self._link.env(submission.eval_id)},
        )
        job_name = str(body["metadata"]["name"])
        eval_id = submission.eval_id
        self._submitting.add(eval_id)
        try:
            if await self._cancelled(eval_id):
                return base.Scheduled(job_name=job_name)  # cancelled before it was made
            if not await self._kube.create_job(body):
                await self._check_same_evaluation(job_name, eval_id)
            if await self._cancelled(eval_id):
                await self._kube.delete_job(job_name)
                return base.Scheduled(job_name=job_name)
            await self._publish_scheduled(eval_id, job_name)
        finally:
            self._submitting.discard(eval_id)
        return base.Scheduled(job_name=job_name)

    async def cancel(self, eval_id: str) -> bool:
        try:
            await cancels.remember(self._redis, eval_id, self._config.cancel_tombstone_seconds)
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
        if existing is not None and reconciler.eval_id_of(existing) != eval_id:
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
