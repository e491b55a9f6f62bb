"""Signals: forwarding to the command's group, the wall-clock timeout and SIGTERM -> SIGKILL.

The handlers act at once (a ``killpg`` or two) instead of leaving a flag for the main loop:
Python runs handlers even while the main thread sits in a blocking write to a slow stdout, so a
timeout or a cancel is honoured however the output is being consumed. Every signal also wakes
the main loop through ``signal.set_wakeup_fd``, which is how SIGCHLD gets the command reaped.
"""

import signal
from types import FrameType
from typing import List, Optional

from wrapper import child

# Passed on to the command's group; SIGTERM also starts the grace period towards SIGKILL, as a
# pod's deletion does, so a cancelled command that ignores it still ends and gets its record.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class Terminator:
    def __init__(self, grace_seconds: float) -> None:
        self.timed_out = False
        self._grace_seconds = grace_seconds
        self._child: Optional[child.Child] = None
        self._pending: List[int] = []  # arrived before the command was started
        self._grace_started = False

    def install(self, wakeup_fd: int) -> None:
        """Take over the signals; ``wakeup_fd`` (non-blocking) gets a byte for each one."""
        for number in FORWARDED_SIGNALS:
            signal.signal(number, self._on_forwarded)
        signal.signal(signal.SIGALRM, self._on_alarm)
        # A Python-level handler, even an empty one, is what makes SIGCHLD reach the wakeup fd.
        signal.signal(signal.SIGCHLD, _ignore)
        signal.set_wakeup_fd(wakeup_fd, warn_on_full_buffer=False)

    def attach(self, command: child.Child, timeout_seconds: Optional[float]) -> None:
        """Start watching ``command``: replay early signals, arm the timeout."""
        self._child = command
        for number in self._pending:
            self._on_forwarded(number, None)
        if timeout_seconds is not None and not self._grace_started:
            signal.setitimer(signal.ITIMER_REAL, timeout_seconds)

    def disarm(self) -> None:
        """The command is gone: no timeout or grace period is pending any more."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        self._grace_started = True

    def _on_forwarded(self, number: int, frame: Optional[FrameType]) -> None:
        if self._child is None:
            self._pending.append(number)
            return
        self._child.signal_group(number)
        if number == signal.SIGTERM:
            self._start_grace()

    def _on_alarm(self, number: int, frame: Optional[FrameType]) -> None:
        if self._child is None:
            return
        if self._grace_started:
            self._child.kill_group()
            return
        self.timed_out = True
        self._child.signal_group(signal.SIGTERM)
        self._start_grace()

    def _start_grace(self) -> None:
        if self._grace_started or self._child is None:
            return
        self._grace_started = True
        if self._grace_seconds > 0:
            signal.setitimer(signal.ITIMER_REAL, self._grace_seconds)
        else:
            self._child.kill_group()


def _ignore(number: int, frame: Optional[FrameType]) -> None:
    """Nothing to do in the handler: the main loop reaps when the wakeup fd fires."""
