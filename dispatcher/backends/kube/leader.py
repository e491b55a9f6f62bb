"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Every dispatcher replica runs an ``Elector``; the one holding the Lease runs the reconciler, so
verdicts and orphan sweeps come from exactly one replica while all of them take submissions.

- Acquire when the Lease is missing, has no holder, or its holder has not changed it for
  ``leaseDurationSeconds`` counted on this replica's monotonic clock from when it last saw the
  record change. The holder's ``renewTime`` is compared for equality only, never with the local
  clock, so clock skew between nodes does not matter.
- Every write carries the resourceVersion that was read: a 409 means another replica wrote
  first and won the round.
- The leader renews every ``retry`` seconds. When no renewal has succeeded for
  ``renew_deadline`` seconds (counted from when the last successful one was sent), or the Lease
  names another holder, it stops leading at once: its term's task is cancelled before anyone
  else may consider the Lease expired (renew deadline < lease duration).
- On a clean stop (cancellation) the leader releases the Lease (no holder, duration 1 s), so
  another replica takes over at its next attempt instead of after expiry.
"""

import asyncio
import dataclasses
import datetime
import logging
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self

from dispatcher import errors
from dispatcher.backends.kube import client
from dispatcher.backends.kube import config as kube_config

log = logging.getLogger(__name__)

# Spread acquisition attempts a little, as client-go's jitter does, so replicas do not collide.
_JITTER = 0.2


@dataclasses.dataclass(frozen=True)
class Timing:
    lease_seconds: int
    renew_deadline_seconds: float
    retry_seconds: float


def lease_name(config: kube_config.KubernetesConfig) -> str:
    if config.leader_lease_name:
        return config.leader_lease_name
    # The instance is a label value; a Lease name is a lowercase DNS subdomain.
    return re.sub(r"[^a-z0-9.-]", "-", config.instance.lower()).strip("-.") + "-reconciler"


def identity(config: kube_config.KubernetesConfig) -> str:
    return (
        config.leader_identity
        or os.environ.get("POD_NAME")
        or f"{socket.gethostname()}-{os.getpid()}"
    )


def micro_time(timestamp: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def holder_of(lease: dict[str, Any] | None) -> str:
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


class Elector:
    def __init__(
        self,
        kube: client.KubeClient,
        *,
        name: str,
        identity: str,
        timing: Timing,
        release_on_cancel: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` measures elapsed time (monotonic); ``wall_clock`` only stamps the record.
        ``release_on_cancel=False`` leaves the Lease to expire, as a crashed process would."""
        self.name = name
        self.identity = identity
        self.timing = timing
        self._kube = kube
        self._release_on_cancel = release_on_cancel
        self._clock = clock
        self._wall_clock = wall_clock
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._held: dict[str, Any] | None = None  # the Lease as this replica last wrote it
        self._leading = False
        self.attempted = asyncio.Event()
        """Set once the first attempt to acquire has ended, won or not."""

    @classmethod
    def from_config(cls, kube: client.KubeClient, config: kube_config.KubernetesConfig) -> Self:
        timing = Timing(
            lease_seconds=config.leader_lease_duration_seconds,
            renew_deadline_seconds=config.leader_renew_deadline_seconds,
            retry_seconds=config.leader_retry_seconds,
        )
        return cls(kube, name=lease_name(config), identity=identity(config), timing=timing)

    @property
    def _request_seconds(self) -> float:
        return self.timing.renew_deadline_seconds

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def observe(self) -> dict[str, Any] | None:
        """Read the Lease and note when its record last changed (on the local clock)."""
        lease = await self._kube.get_lease(self.name, seconds=self._request_seconds)
        spec = (lease or {}).get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec, self._observed_at = spec, self._clock()
        return lease

    async def claim(self, lease: dict[str, Any] | None) -> bool:
        """Take or renew ``lease`` (as ``observe`` returned it) unless another holds it validly;
        False if it is held, or if another replica wrote it first (409)."""
        now = micro_time(self._wall_clock())
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self._kube.namespace},
                "spec": self._spec(acquired=now, renewed=now, transitions=0),
            }
            written = await self._kube.create_lease(body, seconds=self._request_seconds)
            return self._wrote(written)
        spec = lease.get("spec") or {}
        holder = holder_of(lease)
        if holder and holder != self.identity and not self._expired(spec):
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            body_spec = self._spec(spec.get("acquireTime") or now, now, transitions)
        else:
            body_spec = self._spec(acquired=now, renewed=now, transitions=transitions + 1)
        body = {**_writable(lease), "spec": body_spec}
        written = await self._kube.replace_lease(body, seconds=self._request_seconds)
        return self._wrote(written)

    async def try_acquire_or_renew(self) -> bool:
        return await self.claim(await self.observe())

    async def release(self) -> bool:
        """Give the Lease up (no holder, duration 1 s) if this replica still holds it as last
        written; False if someone wrote it since (then it is not ours to give)."""
        held, self._held = self._held, None
        if held is None or holder_of(held) != self.identity:
            return False
        now = micro_time(self._wall_clock())
        spec = {
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": int((held.get("spec") or {}).get("leaseTransitions") or 0),
        }
        try:
            async with asyncio.timeout(self.timing.renew_deadline_seconds):
                written = await self._kube.replace_lease(
                    {**_writable(held), "spec": spec}, seconds=self._request_seconds
                )
        except (errors.DispatcherError, TimeoutError) as e:
            log.warning("could not release the Lease %s (it expires): %s", self.name, e)
            return False
        if written is not None:
            log.info("released the Lease %s", self.name)
        return written is not None

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: acquire the Lease, then run ``lead()`` while holding it, cancelling it the
        moment leadership is lost. On cancellation: stop ``lead()``, then release the Lease."""
        try:
            while True:
                acquired_at = await self._acquire()
                await self._lead(lead, acquired_at)
        finally:
            if self._release_on_cancel:
                await self.release()

    async def _acquire(self) -> float:
        """Attempt until the Lease is won; when the winning write was sent (local clock)."""
        while True:
            started = self._clock()
            won = await self._attempt(self.timing.renew_deadline_seconds)
            self.attempted.set()
            if won:
                log.info("%s leads (Lease %s)", self.identity, self.name)
                return started
            await asyncio.sleep(self.timing.retry_seconds * (1 + _JITTER * random.random()))

    async def _lead(self, lead: Callable[[], Awaitable[None]], acquired_at: float) -> None:
        self._leading = True
        term = asyncio.ensure_future(lead())
        try:
            ended_by_itself = await self._renew_while(term, acquired_at)
        finally:
            # Stopped before anything else: no two replicas' terms may overlap.
            self._leading = False
            term.cancel()
            await asyncio.wait({term})
        if ended_by_itself:
            failure = None if term.cancelled() else term.exception()
            log.error("the leader's task ended; handing the Lease over", exc_info=failure)
            # Give another replica the Lease and a lease duration to take it.
            await self.release()
            await asyncio.sleep(self.timing.lease_seconds)

    async def _renew_while(self, term: asyncio.Future[None], renewed_at: float) -> bool:
        """Renew until leadership is lost (False) or ``term`` ends by itself (True). The
        deadline counts from when the last successful write was sent: others count from when
        they saw it, which is later."""
        while True:
            deadline = renewed_at + self.timing.renew_deadline_seconds
            wait = min(self.timing.retry_seconds, max(0.0, deadline - self._clock()))
            await asyncio.wait({term}, timeout=wait)
            if term.done():
                return True
            started = self._clock()
            if started >= deadline:
                log.warning("%s lost the Lease %s: no renewal in time", self.identity, self.name)
                return False
            if await self._attempt(deadline - started):
                renewed_at = started
            elif self._observed_spec is not None and holder_of(
                {"spec": self._observed_spec}
            ) not in ("", self.identity):
                log.warning("%s lost the Lease %s to another holder", self.identity, self.name)
                return False

    async def _attempt(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                return await self.try_acquire_or_renew()
        except (errors.DispatcherError, TimeoutError) as e:
            log.warning("Lease %s: attempt failed: %s", self.name, getattr(e, "message", e))
            return False

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = int(spec.get("leaseDurationSeconds") or self.timing.lease_seconds)
        return self._clock() >= self._observed_at + duration

    def _spec(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.timing.lease_seconds,
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    def _wrote(self, written: dict[str, Any] | None) -> bool:
        if written is None:
            return False
        self._held = written
        self._observed_spec, self._observed_at = written.get("spec") or {}, self._clock()
        return True


def _writable(lease: dict[str, Any]) -> dict[str, Any]:
    """``lease`` as an update body: the read's resourceVersion (the precondition), no
    server-managed fields."""
    metadata = lease.get("metadata") or {}
    kept = {k: metadata[k] for k in ("name", "namespace", "resourceVersion") if k in metadata}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": kept}
