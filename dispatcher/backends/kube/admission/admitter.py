"""Starts queued evaluations as slots free up: the loop every dispatcher replica runs.

It wakes when this replica queued a submission or applied an end (``wake``), and every
``admission_tick_seconds`` besides (an end another replica applied, a Job to retry). Taking
from the queue is atomic across replicas (``queue``); creating the Job is
``launch``'s. A launch that fails for a passing reason (API server unreachable, a quota) puts
the evaluation back where it was and the loop waits a tick; one the API server refuses for good
ends the evaluation as ``error`` through ``fail``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import redis.exceptions

from dispatcher import errors
from dispatcher.backends.kube.admission.queue import AdmissionQueue, Admitted

log = logging.getLogger(__name__)

_REDIS_ERRORS = (redis.exceptions.RedisError, OSError)
# Jobs created concurrently per step: the API server takes a few at once well, not hundreds.
BATCH = 8
# Admitted evaluations whose end was never applied are looked for this often.
STALE_SWEEP_SECONDS = 30.0

Launch = Callable[[Admitted], Awaitable[None]]
Fail = Callable[[str, str], Awaitable[None]]


class Admitter:
    def __init__(
        self,
        queue: AdmissionQueue,
        launch: Launch,
        fail: Fail,
        *,
        tick_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._launch = launch
        self._fail = fail
        self._tick = tick_seconds
        self._clock = clock
        self._wake = asyncio.Event()
        self._swept_at = clock()
        self.depth = (0, 0)
        """(queued, admitted and not yet ended) as last seen: the whole queue's, all replicas'."""

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._sweep_stale()
                await self.drain()
                self.depth = await self._queue.depth()
            except _REDIS_ERRORS as e:
                log.warning("admission: Redis unavailable, trying again in %ss: %s", self._tick, e)

    async def drain(self) -> None:
        """Start what the limits allow now; stop early when a launch must be retried."""
        while True:
            batch = await self._queue.admit(BATCH)
            if not batch:
                return
            retried = await asyncio.gather(*(self._start(a) for a in batch))
            if any(retried):
                return  # the API server is struggling: next tick

    async def _start(self, admitted: Admitted) -> bool:
        """Launch one; True if it went back to the queue to be tried again."""
        eval_id = admitted.submission.eval_id
        try:
            await self._launch(admitted)
        except (errors.InvalidRequestError, errors.ConflictError) as e:
            log.warning("admission: the API server refused the Job of %s: %s", eval_id, e)
            await self._fail(eval_id, f"the Job could not be created: {e.message}")
        except Exception as e:
            log.warning("admission: Job of %s not created, queued again: %s", eval_id, e)
            await self._queue.requeue(admitted)
            return True
        return False

    async def _sweep_stale(self) -> None:
        if self._clock() - self._swept_at < STALE_SWEEP_SECONDS:
            return
        self._swept_at = self._clock()
        stale = await self._queue.stale()
        if stale:
            log.info("admission: freeing %d slots of evaluations already ended", len(stale))
            await self._queue.release(stale)
