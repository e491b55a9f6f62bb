"""The sidecar of one local evaluation: ``python -m sidecar``, as a pod's sidecar container.

It is started before the wrapper and waited for (``state/sidecar.ready``), so that it sees the
whole run; with ``EXIT_AFTER_TERMINAL`` it exits once it has published the end. Its log goes to
``sidecar.log`` in the work dir (kept with ``LocalConfig.keep_work_dirs``).
"""

import asyncio
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Mapping

from dispatcher.backends import local_process
from dispatcher.backends.local_config import LocalConfig
from wrapper import state

log = logging.getLogger(__name__)

LOG_FILE = "sidecar.log"
# Checks for sidecar.ready: often at first (a warm start takes tens of ms), then less so.
READY_POLL_SECONDS = (0.002, 0.005, 0.01, 0.02)


class Sidecar:
    def __init__(self, process: asyncio.subprocess.Process, eval_id: str, config: LocalConfig):
        self._process = process
        self._eval_id = eval_id
        self._config = config

    @classmethod
    async def start(
        cls,
        eval_id: str,
        work_dir: pathlib.Path,
        *,
        redis_url: str,
        extra_env: Mapping[str, str],
        config: LocalConfig,
    ) -> "Sidecar":
        env = {
            **os.environ,
            **extra_env,
            "CRUCIBLE_SIDECAR_EVAL_ID": eval_id,
            "CRUCIBLE_SIDECAR_REDIS_URL": redis_url,
            "CRUCIBLE_SIDECAR_STATE_DIR": str(work_dir / "state"),
            "CRUCIBLE_SIDECAR_EXIT_AFTER_TERMINAL": "true",
        }
        log_fd = os.open(work_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sidecar",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                # SIGTERM: it drains (publishes what it holds) before it exits.
                preexec_fn=local_process.die_with_parent(signal.SIGTERM),
            )
        finally:
            os.close(log_fd)
        return cls(process, eval_id, config)

    async def wait_ready(self, state_dir: pathlib.Path, give_up: asyncio.Event) -> str | None:
        """None once the sidecar watches ``state_dir`` (or ``give_up`` is set); otherwise why
        it never will. Polls: the file is written by another process."""
        ready = state_dir / state.SIDECAR_READY_FILE
        try:
            async with asyncio.timeout(self._config.sidecar_ready_timeout_seconds):
                for attempt in range(sys.maxsize):
                    if ready.exists() or give_up.is_set():
                        return None
                    if self._process.returncode is not None:
                        status = self._process.returncode
                        return f"SidecarExited: status {status} before it was ready"
                    await asyncio.sleep(READY_POLL_SECONDS[min(attempt, 3)])
        except TimeoutError:
            pass
        return "SidecarNotReady: no sidecar.ready within the timeout"

    async def wait_exit(self) -> bool:
        """Whether it exited within ``sidecar_exit_timeout_seconds``."""
        try:
            async with asyncio.timeout(self._config.sidecar_exit_timeout_seconds):
                await self._process.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, *, exits_by_itself: bool) -> None:
        """Wait for it to exit (if it has an end to publish), then SIGTERM (drain), then
        SIGKILL, each bounded by ``sidecar_exit_timeout_seconds``."""
        for sig in (None, signal.SIGTERM, signal.SIGKILL)[0 if exits_by_itself else 1 :]:
            if self._process.returncode is not None:
                return
            if sig is not None:
                level = logging.WARNING if exits_by_itself else logging.DEBUG
                log.log(level, "sidecar of %s still running: %s", self._eval_id, sig.name)
                self._process.send_signal(sig)
            if await self.wait_exit():
                return
