"""The local backend: the same wrapper and sidecar as a pod, run as processes on this machine.

Submissions wait in a bounded queue, fair across tenants (``FairQueue``), for one of
``LocalConfig.concurrency`` worker slots; each worker runs one ``LocalRun`` at a time. The
backend publishes what a Kubernetes backend and its reconciler would: ``scheduled``, the
verified verdict, ``cancelled``, ``error``.

It is no sandbox: user code runs as the dispatcher's own user, limited only by rlimits
(``local_limits``), with its own environment and working directory. Use it for code you would
run yourself (laptops, demos, CI); untrusted code belongs in the Kubernetes backend. What it
does keep is the verdict: the wrapper's real wait status, with details only from the sidecar's
report of the wrapper's channel; no file user code can write is read as a claim (``local_dirs``).
"""

import asyncio
import contextlib
import logging
import math
import pathlib
import shutil
import tempfile

import redis.asyncio
import redis.exceptions

from dispatcher import errors
from dispatcher.api import ingest
from dispatcher.backends import base, reserve
from dispatcher.backends.fair_queue import FairQueue
from dispatcher.backends.local import dirs as local_dirs
from dispatcher.backends.local import inflight as local_inflight
from dispatcher.backends.local import interpreter as local_interpreter
from dispatcher.backends.local import run as local_run
from dispatcher.backends.local.config import LocalConfig
from dispatcher.store import connect, publish
from wire import events
from wrapper import pack

log = logging.getLogger(__name__)

WRAPPER_FILE = "crucible-wrapper"
SHUTDOWN_REASON = "DispatcherShutdown: the local backend closed"
# Weight of the newest run time in the moving average behind Retry-After.
_RUN_TIME_WEIGHT = 0.2
_RETRY_AFTER_MAX_SECONDS = 3600
# Nothing drains a queue without workers (concurrency 0); tell clients to come back much later.
_RETRY_AFTER_NO_WORKERS_SECONDS = 60
# The backend's own Redis connections (in-flight entries): a burst of submissions waits for one.
REDIS_POOL_MAX = 8


class LocalBackend:
    name = "local"

    def __init__(
        self,
        config: LocalConfig,
        *,
        redis_target: connect.Target,
        publisher: publish.Publisher,
        link: ingest.SidecarLink,
    ) -> None:
        """``redis_target``: the backend's own client (in-flight entries, the sidecars' reports);
        ``publisher`` is the dispatcher's own; ``link`` gives each sidecar the ingest URL and
        its evaluation's credential (sidecars hold no Redis credential)."""
        self._config = config
        self._redis_target = redis_target
        self._publisher = publisher
        self._link = link
        self._waiting: FairQueue[base.Submission] = FairQueue()
        self._has_work = asyncio.Condition()
        self._running: dict[str, local_run.LocalRun] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._context: local_run.RunContext | None = None
        self._owned_root: pathlib.Path | None = None
        self._closing = asyncio.Event()
        self._mean_run_seconds = config.expected_run_seconds
        self._redis: redis.asyncio.Redis | None = None
        self._inflight: local_inflight.InFlight | None = None
        self._admitting = 0

    @property
    def queue_depth(self) -> int:
        """Accepted evaluations waiting for a worker slot."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Evaluations holding a worker slot (starting, running or finishing)."""
        return len(self._running)

    async def start(self) -> None:
        self._redis = self._redis_target.connect(max_connections=REDIS_POOL_MAX)
        self._inflight = local_inflight.InFlight(self._redis)
        await self._inflight.end_orphans(self._publisher)
        self._context = await asyncio.to_thread(self._prepare, self._redis)
        self._workers = [
            asyncio.create_task(self._work(), name=f"local-worker-{i}")
            for i in range(self._config.concurrency)
        ]

    async def close(self) -> None:
        """Cancel what is queued; let what runs finish for ``drain_seconds``, then cancel it;
        wait for the runs to end (each publishes its verdict) and remove the work root."""
        # The HTTP server, sidecars' ingest included, has stopped before the backend closes.
        self._closing.set()
        for eval_id in list(self._waiting):
            await self.cancel(eval_id, reason=SHUTDOWN_REASON)
        async with self._has_work:
            self._has_work.notify_all()
        # A worker leaves its loop once its run has ended and it sees the closing flag.
        if self._workers and self._config.drain_seconds > 0:
            await asyncio.wait(self._workers, timeout=self._config.drain_seconds)
        for eval_id in list(self._running):
            await self.cancel(eval_id, reason=SHUTDOWN_REASON)
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._context is not None:
            await asyncio.to_thread(self._context.layout.close)
        if self._owned_root is not None:
            await asyncio.to_thread(shutil.rmtree, self._owned_root, True)
            self._owned_root = None

    async def submit(self, submission: base.Submission) -> base.Scheduled:
        if self._closing.is_set() or self._context is None or self._inflight is None:
            raise errors.BackendUnavailableError("the local backend is not running")
        eval_id = submission.eval_id
        if eval_id in self._waiting or eval_id in self._running:
            return base.Scheduled(job_name=local_run.job_name(eval_id))
        if self._full():
            raise errors.QueueFullError(
                f"the local queue is full ({self._config.queue_size} waiting)",
                retry_after_seconds=self._retry_after(),
            )
        self._admitting += 1  # holds the slot while the in-flight entry is written
        try:
            await self._inflight.add(eval_id)
        except redis.exceptions.RedisError as e:
            raise errors.BackendUnavailableError(
                f"cannot record the evaluation: {errors.upstream_text(e)}"
            ) from e
        finally:
            self._admitting -= 1
        await self._enqueue(submission)
        return base.Scheduled(job_name=local_run.job_name(eval_id))

    def reserve(self, submission: base.Submission) -> reserve.Reservation | None:
        """``submit`` in the record's round trip (``backends.reserve``): the in-flight entry is
        written with the record; None where ``submit`` would refuse or has it already."""
        eval_id = submission.eval_id
        if (
            self._closing.is_set()
            or self._context is None
            or self._inflight is None
            or eval_id in self._waiting
            or eval_id in self._running
            or self._full()
        ):
            return None
        self._admitting += 1  # holds the slot until the record's round trip is answered
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._admitting -= 1

        async def commit() -> None:
            release()
            await self._enqueue(submission)

        return reserve.Reservation(
            job_name=local_run.job_name(eval_id),
            entry=self._inflight.entry(eval_id),
            commit=commit,
            release=release,
        )

    def _full(self) -> bool:
        capacity = self._config.queue_size + self._config.concurrency
        return len(self._waiting) + len(self._running) + self._admitting >= capacity

    async def _enqueue(self, submission: base.Submission) -> None:
        async with self._has_work:
            self._waiting.put(submission.eval_id, submission)
            self._has_work.notify()

    async def cancel(self, eval_id: str, *, reason: str = base.CANCEL_REASON) -> bool:
        """Publish ``cancelled`` first (so it is the first terminal event whatever the sidecar
        reports of the killed process), then stop the run, which confirms it once the process
        is gone. The token matches the dispatcher's own cancel, so the two are one event."""
        submission = self._waiting.pop(eval_id)
        run = self._running.get(eval_id)
        if submission is None and (run is None or run.ended):
            return False
        cancelled = events.Event(
            eval_id=eval_id, type=events.EventType.CANCELLED, source="dispatcher", reason=reason
        )
        await local_run.publish_retrying(self._publisher, cancelled, token="cancelled")
        if run is not None:
            await run.cancel(reason)
        else:
            # Never started: nothing is left to verify.
            verdict = cancelled.model_copy(update={"verified": True})
            await local_run.publish_retrying(self._publisher, verdict, token="verdict")
            await self._forget(eval_id)
        return True

    async def ready(self) -> bool:
        if self._closing.is_set() or self._context is None:
            return False
        return all(not worker.done() for worker in self._workers)

    def evaluation_ended(self, eval_id: str) -> None:
        """Nothing to do: a worker takes the next submission as soon as its process ends."""

    async def queue_position(self, eval_id: str) -> int | None:
        return None  # the local queue is this process's alone, and starts in milliseconds

    def _prepare(self, client: redis.asyncio.Redis) -> local_run.RunContext:
        """Work root, the wrapper zipapp (built once per backend), and ``python`` on a PATH."""
        if self._config.work_root is None:
            self._owned_root = pathlib.Path(tempfile.mkdtemp(prefix="crucible-local-"))
            root = self._owned_root
        else:
            root = pathlib.Path(self._config.work_root)
            root.mkdir(parents=True, exist_ok=True)
        wrapper_path = root / WRAPPER_FILE
        pack.build(wrapper_path)
        bin_dir = local_interpreter.prepare(root)
        return local_run.RunContext(
            config=self._config,
            publisher=self._publisher,
            redis=client,
            link=self._link,
            wrapper_path=wrapper_path,
            bin_dir=bin_dir,
            layout=local_dirs.Layout.prepare(root),
            closing=self._closing,
        )

    async def _work(self) -> None:
        assert self._context is not None
        while True:
            async with self._has_work:
                await self._has_work.wait_for(lambda: bool(self._waiting) or self._closing.is_set())
                if self._closing.is_set():
                    return
                eval_id, submission = self._waiting.pop_next()
                run = local_run.LocalRun(submission, self._context)
                self._running[eval_id] = run
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await run.run()
            except Exception:
                log.exception("local run of %s failed", eval_id)
                await self._end_with_error(run)
            finally:
                del self._running[eval_id]
                self._observe_run_time(loop.time() - started)
                await self._forget(eval_id)

    async def _forget(self, eval_id: str) -> None:
        if self._inflight is not None:
            await self._inflight.remove(eval_id)

    async def _end_with_error(self, run: local_run.LocalRun) -> None:
        """A run that crashed still ends its evaluation (first terminal event wins)."""
        with contextlib.suppress(Exception):
            await local_run.publish_retrying(
                self._publisher,
                events.Event(
                    eval_id=run.eval_id,
                    type=events.EventType.ERROR,
                    source="dispatcher",
                    reason="LocalBackendError: see the dispatcher log",
                    verified=True,
                ),
                token="verdict",
            )

    def _observe_run_time(self, seconds: float) -> None:
        w = _RUN_TIME_WEIGHT
        self._mean_run_seconds = (1 - w) * self._mean_run_seconds + w * seconds

    def _retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead, drained by all workers."""
        if self._config.concurrency == 0:
            return _RETRY_AFTER_NO_WORKERS_SECONDS
        rounds = (len(self._waiting) + 1) / self._config.concurrency
        estimate = math.ceil(rounds * self._mean_run_seconds)
        return max(1, min(estimate, _RETRY_AFTER_MAX_SECONDS))
