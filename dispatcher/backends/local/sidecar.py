"""The sidecar of one local evaluation: ``python -m sidecar``, as a pod's sidecar container.

It is started before the wrapper and waited for: its socket appears at its path only once it
listens, and the wrapper is started after that, so the first connection, the only one the
sidecar takes, is the wrapper's. It hands its events to this dispatcher's ingest endpoint with
its evaluation's credential (``ingest.SidecarLink``), and with ``EXIT_AFTER_TERMINAL`` exits
once it has. Its log goes to ``sidecar.log`` in the run's private dir (kept with
``LocalConfig.keep_work_dirs``).
"""

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping

from dispatcher.backends.local import dirs as local_dirs
from dispatcher.backends.local import process as local_process
from dispatcher.backends.local.config import LocalConfig
from wire import sidecar_env

log = logging.getLogger(__name__)

ENV_PREFIX = "CRUCIBLE_SIDECAR_"
# Checks for the socket: often at first (a warm start takes tens of ms), then less so.
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
        dirs: local_dirs.RunDirs,
        *,
        link_env: Mapping[str, str],
        config: LocalConfig,
    ) -> "Sidecar":
        """``link_env``: the ingest URL and this evaluation's credential."""
        env = {
            **_inherited_env(),
            **link_env,
            **sidecar_env.channel_env(
                eval_id=eval_id,
                socket_path=str(dirs.socket),
                spool_dir=str(dirs.spool),
                exit_after_terminal=True,
                # The wrapper is our child like the sidecar; other evaluations' code is not.
                peer_parent_pid=os.getpid(),
            ),
        }
        log_fd = os.open(dirs.sidecar_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sidecar",
                cwd=dirs.private,
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

    async def wait_listening(self, dirs: local_dirs.RunDirs, give_up: asyncio.Event) -> str | None:
        """None once the sidecar listens on its socket (or ``give_up`` is set); otherwise why
        it never will. Polls: the socket is made by another process."""
        try:
            async with asyncio.timeout(self._config.sidecar_ready_timeout_seconds):
                for attempt in range(sys.maxsize):
                    if dirs.socket.exists() or give_up.is_set():
                        return None
                    if self._process.returncode == 0:
                        # It exits 0 only once it has served a channel: not the wrapper's.
                        return "SidecarExited: it served a connection before the wrapper started"
                    if self._process.returncode is not None:
                        status = self._process.returncode
                        return f"SidecarExited: status {status} before it listened"
                    await asyncio.sleep(READY_POLL_SECONDS[min(attempt, 3)])
        except TimeoutError:
            pass
        waited = self._config.sidecar_ready_timeout_seconds
        return f"SidecarNotReady: not listening on its socket within {waited:g}s"

    async def wait_exit(self, give_up: asyncio.Event | None = None) -> bool:
        """Whether it exited within ``sidecar_exit_timeout_seconds``; False at once when
        ``give_up`` is set (the dispatcher is closing: its ingest endpoint is gone)."""
        waits = [asyncio.ensure_future(self._process.wait())]
        if give_up is not None:
            waits.append(asyncio.ensure_future(give_up.wait()))
        try:
            await asyncio.wait(
                waits,
                timeout=self._config.sidecar_exit_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        return self._process.returncode is not None

    async def stop(self, *, exits_by_itself: bool, hurry: bool = False) -> None:
        """Wait for it to exit (if it has an end to publish), then SIGTERM (drain), then
        SIGKILL, each bounded by ``sidecar_exit_timeout_seconds``. ``hurry``: SIGKILL at once
        (the dispatcher is closing, nothing it holds can be delivered any more)."""
        steps = (None, signal.SIGTERM, signal.SIGKILL)[0 if exits_by_itself else 1 :]
        for sig in (signal.SIGKILL,) if hurry else steps:
            if self._process.returncode is not None:
                return
            if sig is not None:
                level = logging.WARNING if exits_by_itself and not hurry else logging.DEBUG
                log.log(level, "sidecar of %s still running: %s", self._eval_id, sig.name)
                self._process.send_signal(sig)
            if await self.wait_exit():
                return


def _inherited_env() -> dict[str, str]:
    """The dispatcher's environment less its own ``CRUCIBLE_*`` settings (tokens, keys): a
    sidecar needs none of them; ``CRUCIBLE_SIDECAR_*`` ones are kept, an operator's tuning."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CRUCIBLE_") or name.startswith(ENV_PREFIX)
    }
