"""One local evaluation from start to end, as a pod would run it (layout: ``local_dirs``).

    1. sidecar: ``python -m sidecar`` for this evaluation; wait until it listens on its socket
    2. publish ``scheduled``
    3. wrapper: ``python -I -S crucible-wrapper --timeout T --grace G --channel SOCKET -- CMD``
       in a session of its own, with rlimits, ``python`` on PATH and only the submission's env;
       it connects to the sidecar before it starts CMD
    4. reap the wrapper and kill what the command left behind in its session
    5. let the sidecar publish the end and exit (bounded), then publish the verified verdict
       (``local_verdict``) and remove the run's directories

Every publish here carries a token, so a retry after a lost reply is not a second event.
"""

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import signal
import sys
import time

import redis.asyncio

from dispatcher import quantities
from dispatcher.api import ingest
from dispatcher.backends import base
from dispatcher.backends.local import capture as local_capture
from dispatcher.backends.local import dirs as local_dirs
from dispatcher.backends.local import limits as local_limits
from dispatcher.backends.local import process as local_process
from dispatcher.backends.local import sidecar as local_sidecar
from dispatcher.backends.local import verdict as local_verdict
from dispatcher.backends.local.config import LocalConfig
from dispatcher.store import publish
from wire import channel, events

# Environment a local evaluation starts from, before the submission's own.
_BASE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every run of one backend shares."""

    config: LocalConfig
    publisher: publish.Publisher
    redis: redis.asyncio.Redis
    """Where the backend reads the sidecar's report (the evaluation's stream)."""
    link: ingest.SidecarLink
    wrapper_path: pathlib.Path
    bin_dir: pathlib.Path
    """Holds ``python``, linked to this interpreter: the executor contract is python on PATH."""
    layout: local_dirs.Layout
    closing: asyncio.Event
    """Set when the backend closes: the ingest endpoint is gone, sidecars are not waited for."""


def job_name(eval_id: str) -> str:
    return f"local-{eval_id}"


class LocalRun:
    def __init__(self, submission: base.Submission, context: RunContext) -> None:
        self.submission = submission
        self._ctx = context
        self._cancelled = asyncio.Event()
        self._cancel_reason = ""
        self._wrapper: asyncio.subprocess.Process | None = None
        self._command: asyncio.Task[int | None] | None = None
        """Finds the command's pid (it leads a session of its own) while the wrapper runs."""
        self._escalation: asyncio.Task[None] | None = None
        self._feeding: asyncio.Task[None] | None = None
        self.ended = False
        """The verdict is out; what is left is clean-up."""

    @property
    def eval_id(self) -> str:
        return self.submission.eval_id

    async def run(self) -> None:
        dirs = await asyncio.to_thread(self._ctx.layout.make_run, self.eval_id)
        sidecar = await local_sidecar.Sidecar.start(
            self.eval_id, dirs, link_env=self._ctx.link.env(self.eval_id), config=self._ctx.config
        )
        try:
            not_ready = await sidecar.wait_listening(dirs, give_up=self._cancelled)
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
                verdict = await self._run_wrapper(dirs, sidecar)
            await self.publish(verdict, token="verdict")
            self.ended = True
        finally:
            # Without a channel (no wrapper run, or one killed before it connected: a cancel
            # during its start) the sidecar waits for one for ever: it is stopped at once.
            await sidecar.stop(
                exits_by_itself=_channel_held(dirs), hurry=self._ctx.closing.is_set()
            )
            for task in (self._escalation, self._command, self._feeding):
                if task is not None:
                    task.cancel()
            if not self._ctx.config.keep_work_dirs:
                await asyncio.to_thread(dirs.remove)

    async def cancel(self, reason: str) -> None:
        """Stop the run: SIGTERM to the wrapper (it forwards to its child's group), SIGKILL to
        the wrapper and its whole session after the grace period. The caller has published
        ``cancelled`` already."""
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

    async def _run_wrapper(
        self, dirs: local_dirs.RunDirs, sidecar: local_sidecar.Sidecar
    ) -> events.Event:
        sub = self.submission
        limits = self._limits()
        code = base.code_of(sub.command)
        started = time.monotonic()
        try:
            self._wrapper = await asyncio.create_subprocess_exec(
                *self._wrapper_command(dirs, from_stdin=code is not None),
                cwd=dirs.work,
                env=self._child_env(dirs),
                # The command inherits it: the interpreter reads the program from it.
                stdin=asyncio.subprocess.DEVNULL if code is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=limits.preexec(),
            )
        except OSError as e:
            return local_verdict.error_verdict(self.eval_id, f"WrapperStartFailed: {e}")
        self._command = asyncio.create_task(local_process.first_child(self._wrapper))
        if code is not None:
            self._feeding = asyncio.create_task(_feed(self._wrapper, code))
        if self._cancelled.is_set():  # cancelled while spawning
            await self.cancel(self._cancel_reason)
        deadline_hit = await self._reap(self._wrapper, sub.timeout_seconds)
        elapsed = time.monotonic() - started
        await asyncio.wait({self._command})  # ends at its next look: the wrapper is gone
        # Whatever the evaluation left running dies with it, as in a container (the wrapper
        # ends its command's group itself, unless it was killed).
        await self._kill_leftovers()
        observed = local_verdict.Observed(
            returncode=_returncode(self._wrapper),
            elapsed_seconds=elapsed,
            timeout_seconds=sub.timeout_seconds,
            cancel_reason=self._cancel_reason if self._cancelled.is_set() else None,
            deadline_hit=deadline_hit,
            memory_limited=limits.memory_bytes is not None,
            command_started=self._command_pid() is not None,
        )
        # The sidecar reports the end first (the latency clients wait on); the confirmation
        # follows once it is done, instead of competing with it for the CPU.
        if _channel_held(dirs):
            await sidecar.wait_exit(give_up=self._ctx.closing)
        captured = await local_capture.capture(self._ctx.redis, self.eval_id, dirs.spool)
        return local_verdict.verdict(self.eval_id, observed, captured)

    def _wrapper_command(self, dirs: local_dirs.RunDirs, *, from_stdin: bool) -> list[str]:
        """``from_stdin``: a ``code`` submission, its program read from stdin, not argv."""
        sub, config = self.submission, self._ctx.config
        command = [*base.CODE_COMMAND[:-1], "-"] if from_stdin else sub.command
        return [
            sys.executable,
            "-I",
            "-S",
            str(self._ctx.wrapper_path),
            "--timeout",
            repr(sub.timeout_seconds),
            "--grace",
            repr(config.kill_grace_seconds),
            "--channel",
            str(dirs.socket),
            "--connect-timeout",
            repr(config.sidecar_ready_timeout_seconds),
            "--",
            *command,
        ]

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
            await self._kill_leftovers()
            await wrapper.wait()
            return True

    async def _kill_after_grace(self) -> None:
        await asyncio.sleep(self._ctx.config.kill_grace_seconds)
        wrapper = self._wrapper
        if wrapper is not None and wrapper.returncode is None:
            local_process.signal_group(wrapper.pid, signal.SIGKILL)
            await self._kill_leftovers()

    async def _kill_leftovers(self) -> None:
        """SIGKILL the wrapper's session and its command's (each leads one of its own)."""
        sessions = [self._wrapper.pid] if self._wrapper is not None else []
        command = self._command_pid()
        sessions += [command] if command is not None else []
        for sid in sessions:
            await asyncio.to_thread(local_process.kill_session, sid)

    def _command_pid(self) -> int | None:
        watch = self._command
        if watch is None or not watch.done() or watch.cancelled():
            return None
        return watch.result()

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

    def _child_env(self, dirs: local_dirs.RunDirs) -> dict[str, str]:
        """Only what a fresh container would have: the dispatcher's own environment (tokens,
        Redis URL) never reaches user code, nor does the channel's path."""
        host_path = os.environ.get("PATH", _DEFAULT_PATH)
        return {
            **_BASE_ENV,
            "HOME": str(dirs.work),
            "TMPDIR": str(dirs.tmp),
            "PATH": f"{self._ctx.bin_dir}{os.pathsep}{host_path}",
            **self.submission.env,
        }


async def publish_retrying(
    publisher: publish.Publisher, event: events.Event, *, token: str
) -> None:
    """Publish, retrying while Redis is unreachable (it may be restarting). The token makes a
    retry after a lost reply a no-op instead of a second event."""
    await local_capture.redis_retrying(
        lambda: publisher.publish(event, token=token), f"publish {token} of {event.eval_id}"
    )


def _channel_held(dirs: local_dirs.RunDirs) -> bool:
    """Whether the sidecar took a connection (its marker; claimed before the wrapper's ACK):
    only then has it an end to publish and exits by itself."""
    return (dirs.spool / channel.ACCEPTED_MARKER).exists()


async def _feed(wrapper: asyncio.subprocess.Process, code: str) -> None:
    """Write the program to the wrapper's stdin, which its command inherits, then close it: a
    command that never starts, or exits before reading it all, just leaves the rest."""
    pipe = wrapper.stdin
    assert pipe is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        pipe.write(code.encode())
        await pipe.drain()
    pipe.close()


def _returncode(process: asyncio.subprocess.Process) -> int:
    assert process.returncode is not None, "only called once the process was reaped"
    return process.returncode
