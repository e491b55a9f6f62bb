"""Submitting and cancelling: the steps between a valid request and the backend, in order.

Submit: create the record atomically (an existing eval_id with the same digest is an
idempotent retry, another digest a conflict), publish ``accepted``, then hand the submission to
the backend. A full queue removes the record again (429, nothing left behind); any other
backend failure turns the record into ``error`` with the reason (503). A backend that can
(``backends.reserve``: the local one) takes the submission in the record's own round trip:
record, its queue entry and ``accepted`` in one step, its job name in the record.

Cancel: publish ``cancelled`` first, then stop the evaluation, so the exit-by-signal the
sidecar reports afterwards can never be the first terminal event.
"""

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable

from redis.asyncio.client import Pipeline

from dispatcher import errors, metrics, tenants
from dispatcher.api.schema.requests import Spec
from dispatcher.backends import reserve
from dispatcher.backends.base import CANCEL_REASON, Backend, Submission
from dispatcher.store import publish
from dispatcher.store.records import Record, Status
from dispatcher.store.store import Store
from wire import events, tenancy

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Outcome:
    record: Record
    created: bool


class Submitter:
    def __init__(
        self,
        *,
        backend: Backend,
        store: Store,
        publisher: publish.Publisher,
        registry: metrics.Registry,
        tenant_limits: tenants.TenantsConfig | None = None,
    ) -> None:
        self._backend = backend
        self._reserving = backend if isinstance(backend, reserve.Reserving) else None
        self._tenants = tenant_limits or tenants.TenantsConfig()
        self._refusals = Refusals()
        self._store = store
        self._publisher = publisher
        self._outcomes = registry.counter(
            "crucible_dispatcher_submissions_total",
            "Submissions by outcome and tenant (empty: an operator's own).",
        )

    def refuse_early(self, who: tenants.Principal) -> None:
        """Before the body is read: a tenant that Redis refused moments ago (over its rate)
        is refused again at once, at the cost of a dict lookup (a burst's thousand requests
        would otherwise each be parsed, validated and sent to Redis to hear the same)."""
        if who.tenant is not None:
            try:
                self._refusals.check(who.tenant)
            except errors.TenantLimitError:
                self.count("tenant_limit", who.tenant)
                raise

    def count(self, outcome: str, tenant: str) -> None:
        self._outcomes.inc(outcome=outcome, tenant=tenant)

    async def submit(self, spec: Spec, who: tenants.Principal) -> Outcome:
        """Submit as ``who``: the id is qualified with its tenant (``wire.tenancy``)."""
        submission = _submission(who.qualify(spec.eval_id or os.urandom(16).hex()), spec)
        eval_id, tenant = submission.eval_id, tenancy.split(submission.eval_id)[0]
        # A backend that can take it in the record's own round trip (``backends.reserve``).
        held = self._reserving.reserve(submission) if self._reserving is not None else None
        try:
            record = self._record(spec, eval_id, held.job_name if held is not None else None)
            accepted = events.Event(
                eval_id=eval_id, type=events.EventType.ACCEPTED, source="dispatcher"
            )

            def announce(pipe: Pipeline) -> None:
                # Same round trip as the record. For an existing record it is a no-op: the
                # token names the first submission's event; with no record (over a limit),
                # nothing.
                self._publisher.queue(
                    pipe, accepted, token="accepted", if_exists=self._store.keyspace.record(eval_id)
                )

            # A failed announcement removes the new record (and the backend's entry): no
            # record a retry would take for a success is left behind.
            existing = await self._store.create(
                record,
                then=announce,
                limits=self._tenants.for_tenant(who.tenant),
                entry=held.entry if held is not None else None,
            )
        except BaseException as e:
            if held is not None:
                held.release()
            if isinstance(e, errors.TenantLimitError):
                self.count("tenant_limit", tenant)
                self._refusals.note(tenant, e)
            raise
        if existing is not None:
            if held is not None:
                held.release()
            return await self._existing(record, existing)
        if held is not None:
            await held.commit()
        else:
            job_name = await self._hand_over(record, submission)
            await self._store.set_job_name(record.eval_id, job_name)
            record = record.model_copy(update={"job_name": job_name})
        self.count("created", tenant)
        # The record as accepted; not re-read, events applied since then are the next GET's.
        return Outcome(record, created=True)

    def _record(self, spec: Spec, eval_id: str, job_name: str | None) -> Record:
        # From validated values, not validated again (as ``api.schema.requests.Spec``).
        return Record.model_construct(
            eval_id=eval_id,
            status=Status.ACCEPTED,
            backend=self._backend.name,
            image=spec.image,
            command=spec.command,
            timeout_seconds=spec.timeout_seconds,
            resources=spec.resources,
            labels=spec.labels,
            created_at=time.time(),
            request_digest=spec.digest(),
            job_name=job_name,
        )

    async def _existing(self, record: Record, digest: str) -> Outcome:
        if digest != record.request_digest:
            self.count("conflict", _tenant(record))
            raise errors.ConflictError(
                f"evaluation {tenancy.split(record.eval_id)[1]!r} exists with a different request",
                details=[{"field": "eval_id", "message": "already used for another request"}],
            )
        self.count("duplicate", _tenant(record))
        return Outcome(await self._store.require(record.eval_id), created=False)

    async def _hand_over(self, record: Record, submission: Submission) -> str:
        try:
            return (await self._backend.submit(submission)).job_name
        except errors.QueueFullError:
            await self._store.remove(record.eval_id)
            self.count("queue_full", _tenant(record))
            raise
        except errors.InvalidRequestError:
            # The backend's own checks (e.g. what its Job template can carry) refused it before
            # creating anything: as if validation had caught it, nothing is left behind.
            await self._store.remove(record.eval_id)
            self.count("invalid", _tenant(record))
            raise
        except Exception as e:
            log.exception("backend %s refused %s", self._backend.name, record.eval_id)
            reason = errors.upstream_text(getattr(e, "message", None) or e)
            await self._publisher.publish(
                events.Event(
                    eval_id=record.eval_id,
                    type=events.EventType.ERROR,
                    source="dispatcher",
                    reason=f"submission failed: {reason}",
                ),
                token="submit-error",
            )
            await self._store.sync(record.eval_id)
            self.count("backend_error", _tenant(record))
            raise errors.BackendUnavailableError(f"the backend could not take it: {reason}") from e

    async def cancel(self, eval_id: str) -> Record:
        record = await self._store.require(eval_id)
        if record.status.terminal:
            return record
        await self._publisher.publish(
            events.Event(
                eval_id=eval_id,
                type=events.EventType.CANCELLED,
                source="dispatcher",
                reason=CANCEL_REASON,
            ),
            token="cancelled",
        )
        try:
            await self._backend.cancel(eval_id)
        except Exception as e:
            log.exception("backend %s could not stop %s", self._backend.name, eval_id)
            await self._store.sync(eval_id)
            raise errors.BackendUnavailableError(
                "the cancellation is recorded, but the backend could not stop the evaluation: "
                + errors.upstream_text(getattr(e, "message", None) or e)
            ) from e
        return await self._store.sync(eval_id)


class Refusals:
    """Per tenant, until when this dispatcher knows its answer is still 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, tuple[float, errors.TenantLimitError]] = {}

    def note(self, tenant: str, refused: errors.TenantLimitError) -> None:
        if refused.hold_seconds > 0:
            self._until[tenant] = (self._clock() + refused.hold_seconds, refused)

    def check(self, tenant: str) -> None:
        held = self._until.get(tenant)
        if held is None:
            return
        until, refused = held
        left = until - self._clock()
        if left <= 0:
            del self._until[tenant]
            return
        raise errors.TenantLimitError(
            refused.message, retry_after_seconds=max(1, math.ceil(left)), hold_seconds=left
        )


def _submission(eval_id: str, spec: Spec) -> Submission:
    return Submission(
        eval_id=eval_id,
        command=spec.command,
        image=spec.image,
        timeout_seconds=spec.timeout_seconds,
        resources=spec.resources,
        env=spec.env,
        labels=spec.labels,
    )


def _tenant(record: Record) -> str:
    return tenancy.split(record.eval_id)[0]
