"""One local evaluation from start to end, as a pod would run it.

    work dir (cwd, HOME, TMPDIR) ── state/ ── the wrapper's files, watched by the sidecar
    1. sidecar: ``python -m sidecar`` for this evaluation; wait for ``state/sidecar.ready``
    2. publish ``scheduled``
    3. wrapper: ``python -I -S crucible-wrapper --timeout T --grace G --state-dir D -- CMD`` in a
       session of its own, with rlimits, ``python`` on PATH and only the submission's env
    4. reap the wrapper and kill what the command left behind in its process group
    5. let the sidecar publish the end and exit (bounded), then publish the verified verdict
       (``local_verdict``) and remove the work dir

Every publish here carries a token, so a retry after a lost reply is not a second event.
"""

import asyncio
import dataclasses
import logging
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping

import redis.exceptions

from dispatcher import quantities
from dispatcher.backends import (
    base,
    local_limits,
    local_process,
    local_sidecar,
    local_verdict,
)
from dispatcher.backends.local_config import LocalConfig
from sidecar import events, streams, tail
from wrapper import state

log = logging.getLogger(__name__)

PUBLISH_RETRY_SECONDS = 60.0
# Environment a local evaluation starts from, before the submission's own.
_BASE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every run of one backend shares."""

    config: LocalConfig
    publisher: streams.Publisher
    redis_url: str
    wrapper_path: pathlib.Path
    bin_dir: pathlib.Path
    """Holds ``python``, linked to this interpreter: the executor contract is python on PATH."""
    work_root: pathlib.Path
    sidecar_env: Mapping[str, str]


def job_name(eval_id: str) -> str:
    return f"local-{eval_id}"


class LocalRun:
    def __init__(self, submission: base.Submission, context: RunContext) -> None:
        self.submission = submission
        self._ctx = context
        self._cancelled = asyncio.Event()
        self._cancel_reason = ""
        self._wrapper: asyncio.subprocess.Process | None = None
        self._escalation: asyncio.Task[None] | None = None
        self._state_dir: pathlib.Path | None = None
        self.ended = False
        """The verdict is out; what is left is clean-up."""

    @property
    def eval_id(self) -> str:
        return self.submission.eval_id

    async def run(self) -> None:
        work_dir = await asyncio.to_thread(self._make_work_dir)
        self._state_dir = work_dir / "state"
        sidecar = await local_sidecar.Sidecar.start(
            self.eval_id,
            work_dir,
            redis_url=self._ctx.redis_url,
            extra_env=self._ctx.sidecar_env,
            config=self._ctx.config,
        )
        try:
            not_ready = await sidecar.wait_ready(self._state_dir, give_up=self._cancelled)
            if self._cancelled.is_set():
                verdict = self._verdict_without_run(cancelled=True, reason=self._cancel_reason)
            elif not_ready:
                verdict = self._verdict_without_run(cancelled=False, reason=not_ready)
            else:
                await self.publish(
                    events.Event(
                        eval_id=self.eval_id,
                        type=events.EventType.SCHEDULED,
                        source="dispatcher",
                        job_name=job_name(self.eval_id),
                    ),
                    token="scheduled",
                )
                verdict = await self._run_wrapper(work_dir, sidecar)
            await self.publish(verdict, token="verdict")
            self.ended = True
        finally:
            # Without a wrapper run there is no exit record, and the sidecar waits for one.
            await sidecar.stop(exits_by_itself=self._wrapper is not None)
            if self._escalation is not None:
                self._escalation.cancel()
            if not self._ctx.config.keep_work_dirs:
                await asyncio.to_thread(shutil.rmtree, work_dir, True)

    async def cancel(self, reason: str) -> None:
        """Stop the run: SIGTERM to the wrapper (it forwards to its child's group), SIGKILL to
        both groups after the grace period. The caller has published ``cancelled`` already."""
        if not self._cancelled.is_set():
            self._cancel_reason = reason
        self._cancelled.set()
        wrapper = self._wrapper
        if wrapper is None or wrapper.returncode is not None:
            return
        local_process.signal_group(wrapper.pid, signal.SIGTERM)
        if self._escalation is None:
            self._escalation = asyncio.create_task(self._kill_after_grace())

    async def publish(self, event: events.Event, *, token: str) -> None:
        await publish_retrying(self._ctx.publisher, event, token=token)

    def _make_work_dir(self) -> pathlib.Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.eval_id)[:64]
        work_dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self._ctx.work_root))
        (work_dir / "state").mkdir()
        (work_dir / "tmp").mkdir()
        return work_dir

    async def _run_wrapper(
        self, work_dir: pathlib.Path, sidecar: local_sidecar.Sidecar
    ) -> events.Event:
        sub, config = self.submission, self._ctx.config
        limits = self._limits()
        started = time.monotonic()
        try:
            self._wrapper = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(self._ctx.wrapper_path),
                "--timeout",
                repr(sub.timeout_seconds),
                "--grace",
                repr(config.kill_grace_seconds),
                "--state-dir",
                str(work_dir / "state"),
                "--",
                *sub.command,
                cwd=work_dir,
                env=self._child_env(work_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=limits.preexec(),
            )
        except OSError as e:
            return local_verdict.error_verdict(self.eval_id, f"WrapperStartFailed: {e}")
        if self._cancelled.is_set():  # cancelled while spawning
            await self.cancel(self._cancel_reason)
        deadline_hit = await self._reap(self._wrapper, sub.timeout_seconds)
        elapsed = time.monotonic() - started
        # Whatever the evaluation left running dies with it, as in a container.
        self._signal_child_group(signal.SIGKILL)
        observed = local_verdict.Observed(
            returncode=_returncode(self._wrapper),
            elapsed_seconds=elapsed,
            timeout_seconds=sub.timeout_seconds,
            cancel_reason=self._cancel_reason if self._cancelled.is_set() else None,
            deadline_hit=deadline_hit,
            memory_limited=limits.memory_bytes is not None,
        )
        # The sidecar reports the end first (the latency clients wait on); the confirmation
        # follows once it is done, instead of competing with it for the CPU.
        await sidecar.wait_exit()
        captured = await asyncio.to_thread(_capture, work_dir / "state")
        return local_verdict.verdict(self.eval_id, observed, captured)

    async def _reap(self, wrapper: asyncio.subprocess.Process, timeout_seconds: float) -> bool:
        """Wait for the wrapper; True if the backstop deadline had to kill it."""
        config = self._ctx.config
        backstop = timeout_seconds + config.kill_grace_seconds + config.deadline_margin_seconds
        try:
            async with asyncio.timeout(backstop):
                await wrapper.wait()
            return False
        except TimeoutError:
            local_process.signal_group(wrapper.pid, signal.SIGKILL)
            self._signal_child_group(signal.SIGKILL)
            await wrapper.wait()
            return True

    async def _kill_after_grace(self) -> None:
        await asyncio.sleep(self._ctx.config.kill_grace_seconds)
        wrapper = self._wrapper
        if wrapper is not None and wrapper.returncode is None:
            local_process.signal_group(wrapper.pid, signal.SIGKILL)
            self._signal_child_group(signal.SIGKILL)

    def _signal_child_group(self, sig: signal.Signals) -> None:
        """The wrapper runs the command in a process group of its own, named in started.json."""
        if self._state_dir is None:
            return
        record = state.read_json(str(self._state_dir), state.STARTED_FILE)
        pid = record.get("pid") if record else None
        if isinstance(pid, int):
            local_process.signal_group(pid, sig)

    def _verdict_without_run(self, *, cancelled: bool, reason: str) -> events.Event:
        if cancelled:
            return events.Event(
                eval_id=self.eval_id,
                type=events.EventType.CANCELLED,
                source="dispatcher",
                reason=reason,
                verified=True,
            )
        return local_verdict.error_verdict(self.eval_id, reason)

    def _limits(self) -> local_limits.Limits:
        config = self._ctx.config
        try:
            memory: int | None = quantities.memory_bytes(self.submission.resources.memory)
        except quantities.QuantityError:
            memory = None  # validated at submission; an empty request means no limit
        if memory is not None:
            memory = max(memory, config.memory_floor_bytes)
        return local_limits.Limits(
            memory_bytes=memory,
            file_bytes=config.max_file_bytes,
            processes=config.max_processes,
            nice=config.nice,
        )

    def _child_env(self, work_dir: pathlib.Path) -> dict[str, str]:
        """Only what a fresh container would have: the dispatcher's own environment (tokens,
        Redis URL) never reaches user code."""
        host_path = os.environ.get("PATH", _DEFAULT_PATH)
        return {
            **_BASE_ENV,
            "HOME": str(work_dir),
            "TMPDIR": str(work_dir / "tmp"),
            "PATH": f"{self._ctx.bin_dir}{os.pathsep}{host_path}",
            **self.submission.env,
        }


async def publish_retrying(
    publisher: streams.Publisher, event: events.Event, *, token: str
) -> None:
    """Publish, retrying while Redis is unreachable (it may be restarting). The token makes a
    retry after a lost reply a no-op instead of a second event."""
    deadline = time.monotonic() + PUBLISH_RETRY_SECONDS
    delay = 0.05
    while True:
        try:
            await publisher.publish(event, token=token)
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("publish %s of %s failed, retrying: %s", token, event.eval_id, e)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _capture(state_dir: pathlib.Path) -> local_verdict.Captured:
    record = state.read_json(str(state_dir), state.EXIT_FILE)
    return local_verdict.Captured(
        exit_record=record,
        output=tail.read_tail(str(state_dir / state.STDOUT_FILE)),
        error=tail.read_tail(str(state_dir / state.STDERR_FILE)),
        truncated=bool(
            record and (record.get("stdout_truncated") or record.get("stderr_truncated"))
        ),
    )


def _returncode(process: asyncio.subprocess.Process) -> int:
    assert process.returncode is not None, "only called once the process was reaped"
    return process.returncode
