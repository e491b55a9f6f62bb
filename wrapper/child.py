"""The user's command, run as the leader of its own process group, and the reaping of children.

The wrapper may be PID 1 of a container, so every orphan of the evaluation is re-parented to it:
reaping collects every exited child, not just the command. The main thread reaps while the signal
thread signals the group, so a lock keeps a signal from reaching the group id once the leader is
reaped (its pid, and with it the group id, may then belong to someone else).
"""

import contextlib
import os
import signal
import subprocess
import threading
from typing import Callable, List, NamedTuple, Optional

from wire import channel


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
        return ExitStatus(channel.EXIT_SIGNAL_BASE + number, number)
    return ExitStatus(os.WEXITSTATUS(status), None)


def spawn(command: List[str], stdout_fd: int, stderr_fd: int) -> "Child":
    """Start ``command`` in a new session (so in a process group of its own).

    Call it while the wrapper has no other thread: ``preexec_fn`` runs Python in the forked child.
    The command gets an empty signal mask and every signal at its default: exec resets only the
    caught ones, and whatever the wrapper's own parent ignored (``nohup`` ignores SIGHUP, a
    shell's background job SIGINT and SIGQUIT) would otherwise stay ignored in user code.
    """
    try:
        popen = subprocess.Popen(
            command,
            stdin=None,
            stdout=stdout_fd,
            stderr=stderr_fd,
            close_fds=True,
            start_new_session=True,
            restore_signals=True,
            preexec_fn=_default_signals,
        )
    except (FileNotFoundError, NotADirectoryError) as error:
        if os.sep in command[0] and os.path.exists(command[0]):
            reason = f"cannot execute: {error} (its #! interpreter is missing)"
            raise SpawnError(channel.EXIT_NOT_EXECUTABLE, reason) from error
        raise SpawnError(channel.EXIT_NOT_FOUND, f"command not found: {error}") from error
    except OSError as error:
        if error.filename is None:
            raise  # fork failed (no memory, process limit): the wrapper's failure, not the file's
        raise SpawnError(channel.EXIT_NOT_EXECUTABLE, f"cannot execute: {error}") from error
    return Child(popen)


_UNRESETTABLE = {signal.SIGKILL, signal.SIGSTOP}
# Python 3.9+ on Linux 5.3+; looked up by name, the wrapper runs on 3.8 too.
_PIDFD_OPEN: Optional[Callable[[int], int]] = getattr(os, "pidfd_open", None)


def exit_fd(pid: int) -> Optional[int]:
    """A descriptor that becomes readable when child ``pid`` exits (a pidfd, close-on-exec),
    or None where there is none (then SIGCHLD through the signal thread is the only wakeup).
    ``pid`` must be an unreaped child, so it cannot name another process yet."""
    if _PIDFD_OPEN is None:
        return None
    try:
        return _PIDFD_OPEN(pid)
    except OSError:  # an older kernel (ENOSYS), or a sandbox that refuses the call
        return None


def _default_signals() -> None:
    for number in signal.valid_signals():
        if number in _UNRESETTABLE:
            continue
        with contextlib.suppress(OSError, ValueError):  # glibc's own (32, 33): untouchable
            signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Child:
    """The running command: signals for its whole group, and its exit status once reaped."""

    def __init__(self, popen: "subprocess.Popen[bytes]") -> None:
        self.pid = popen.pid
        self.status: Optional[ExitStatus] = None
        self._popen = popen
        # Set once the group was killed at the leader's exit, under the lock, with the reaping.
        self._group_done = False
        self._lock = threading.Lock()

    def signal_group(self, number: int) -> None:
        with self._lock:
            self._signal_group(number)

    def has_exited(self) -> bool:
        """Whether the command has ended, reaped or not (the zombie is left in place)."""
        with self._lock:
            if self.status is not None:
                return True
            if not hasattr(os, "waitid"):
                return False
            try:
                info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            return info is not None

    def reap(self) -> bool:
        """Reap every exited child of the wrapper; True once the command's status is known.

        When the command is found exited, what is left of its group (grandchildren that kept
        running, maybe holding the output pipes) is killed while the unreaped leader still pins
        the group id, so the signal cannot reach a stranger.
        """
        while self._reap_one():
            pass
        return self.status is not None

    def kill_group(self) -> None:
        self.signal_group(signal.SIGKILL)

    def kill_and_wait(self) -> None:
        """Last resort on an internal error: the command must not outlive the wrapper."""
        if self.status is None:
            self.kill_group()
            with self._lock:
                _, status = os.waitpid(self.pid, 0)
                self._set_status(status)

    def _signal_group(self, number: int) -> None:
        if self._group_done:
            return
        # ESRCH: the group is empty (a zombie leader's group can still be signalled).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, number)

    def _set_status(self, status: int) -> None:
        self.status = decode_wait_status(status)
        self._popen.returncode = self.status.exit_code  # reaped here, so no longer Popen's
        self._group_done = True

    def _reap_one(self) -> bool:
        """Reap one exited child; False when none has exited."""
        try:
            if not hasattr(os, "waitid"):
                return self._reap_blindly()
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is None:
                return False
            if info.si_pid != self.pid:
                os.waitpid(info.si_pid, 0)
                return True
            with self._lock:
                self._signal_group(signal.SIGKILL)  # the zombie leader still pins the group id
                _, status = os.waitpid(self.pid, 0)
                self._set_status(status)
            return True
        except ChildProcessError:
            return False

    def _reap_blindly(self) -> bool:
        # No waitid (macOS before Python 3.13): kill the group just after the leader's reaping,
        # a negligible window for pid reuse on a laptop.
        with self._lock:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == self.pid:
                self._signal_group(signal.SIGKILL)
                self._set_status(status)
        return pid != 0
