"""The user's command, run as the leader of its own process group, and the reaping of children.

The wrapper may be PID 1 of a container, so every orphan of the evaluation is re-parented to it:
reaping collects every exited child, not just the command.
"""

import contextlib
import os
import signal
import subprocess
from typing import List, NamedTuple, Optional, Tuple

from wrapper import state


class SpawnError(Exception):
    """The command could not be started; ``exit_code`` follows the shell (127 / 126)."""

    def __init__(self, exit_code: int, reason: str) -> None:
        super().__init__(reason)
        self.exit_code = exit_code
        self.reason = reason


class ExitStatus(NamedTuple):
    exit_code: int
    signal: Optional[int]


def decode_wait_status(status: int) -> ExitStatus:
    """``os.waitstatus_to_exitcode`` is 3.9+; a death by signal N becomes 128+N, as in shells."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return ExitStatus(state.EXIT_SIGNAL_BASE + number, number)
    return ExitStatus(os.WEXITSTATUS(status), None)


def spawn(command: List[str], stdout_fd: int, stderr_fd: int) -> "Child":
    """Start ``command`` in a new session (so in a process group of its own)."""
    try:
        popen = subprocess.Popen(
            command, stdout=stdout_fd, stderr=stderr_fd, close_fds=True, start_new_session=True
        )
    except (FileNotFoundError, NotADirectoryError) as error:
        if os.sep in command[0] and os.path.exists(command[0]):
            reason = f"cannot execute: {error} (its #! interpreter is missing)"
            raise SpawnError(state.EXIT_NOT_EXECUTABLE, reason) from error
        raise SpawnError(state.EXIT_NOT_FOUND, f"command not found: {error}") from error
    except OSError as error:
        if error.filename is None:
            raise  # fork failed (no memory, process limit): the wrapper's failure, not the file's
        raise SpawnError(state.EXIT_NOT_EXECUTABLE, f"cannot execute: {error}") from error
    return Child(popen)


class Child:
    """The running command: signals for its whole group, and its exit status once reaped."""

    def __init__(self, popen: "subprocess.Popen[bytes]") -> None:
        self.pid = popen.pid
        self.status: Optional[ExitStatus] = None
        self._popen = popen
        # Set once the group was killed at the leader's exit: after the leader is reaped its
        # pid, and with it the group id, may belong to someone else.
        self._group_done = False

    def signal_group(self, number: int) -> None:
        if self._group_done:
            return
        # ESRCH: the group is empty (a zombie leader's group can still be signalled).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, number)

    def reap(self) -> bool:
        """Reap every exited child of the wrapper; True once the command's status is known.

        When the command is found exited, what is left of its group (grandchildren that kept
        running, maybe holding the output pipes) is killed while the unreaped leader still pins
        the group id, so the signal cannot reach a stranger.
        """
        while True:
            reaped = self._reap_one()
            if reaped is None:
                return self.status is not None
            pid, status = reaped
            if pid == self.pid:
                self._set_status(status)

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)

    def kill_and_wait(self) -> None:
        """Last resort on an internal error: the command must not outlive the wrapper."""
        if self.status is None:
            self.kill_group()
            _, status = os.waitpid(self.pid, 0)
            self._set_status(status)

    def _set_status(self, status: int) -> None:
        self.status = decode_wait_status(status)
        self._popen.returncode = self.status.exit_code  # reaped here, so no longer Popen's
        self._group_done = True

    def _reap_one(self) -> Optional[Tuple[int, int]]:
        """Reap one exited child: (pid, wait status), or None when none has exited."""
        try:
            if hasattr(os, "waitid"):
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if info is None:
                    return None
                if info.si_pid == self.pid:
                    self.kill_group()  # the zombie leader still pins the group id
                return os.waitpid(info.si_pid, 0)
            # No waitid (macOS before Python 3.13): reap blindly and kill the group just after
            # the leader's reaping, a negligible window for pid reuse on a laptop.
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        if pid == self.pid:
            self.kill_group()
        return pid, status
