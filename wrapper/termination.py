"""Signals: who may send them, forwarding to the command's group, the timeout and the grace.

The signals the wrapper acts on are blocked before any thread or child exists, and a single
thread takes them with ``sigtimedwait``, which says who sent each one. Only the wrapper's parent
(the dispatcher, on the local backend) and senders outside its PID namespace (the container
runtime, when the wrapper is PID 1) may forward a signal: user code runs as the same UID, so
without this check it could end the wrapper, or make it kill the command early. The same thread
keeps the wall-clock timeout and the grace with the wait's own timeout, and acts at once (a
``killpg`` or two), so neither waits for the main loop, which may sit in a write to a slow stdout.
"""

import contextlib
import os
import signal
import threading
import time
from typing import List, NamedTuple, Optional

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
# SIGCHLD only wakes the main loop to reap.
HANDLED_SIGNALS = frozenset((*FORWARDED_SIGNALS, signal.SIGCHLD))

# si_code values (Linux) for which the kernel fills in the sender itself: kill(), tgkill() and
# its own signals. With any other code (SI_QUEUE...) rt_sigqueueinfo lets the sender write si_pid
# as it likes, 0 included, and F_SETSIG'd SIGIO-style signals carry a poll band in its place.
_SI_USER = 0
_SI_KERNEL = 0x80
_SI_TKILL = -6
_KERNEL_FILLED_CODES = frozenset((_SI_USER, _SI_KERNEL, _SI_TKILL))

# Without sigtimedwait (macOS, laptops only) pending signals are polled, senders unknown.
_HAS_SIGINFO = hasattr(signal, "sigtimedwait")
_POLL_SECONDS = 0.05


def block() -> None:
    """Hold the handled signals for ``sigtimedwait``; call before any thread or child exists."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)


class Arrival(NamedTuple):
    number: int
    sender: Optional[int]  # None: unknown (no siginfo on this platform)
    code: Optional[int]


def next_signal(timeout: Optional[float]) -> Optional[Arrival]:
    """The next handled signal, or None once ``timeout`` seconds passed (None: wait for ever)."""
    if _HAS_SIGINFO:
        if timeout is None:
            info: Optional[signal.struct_siginfo] = signal.sigwaitinfo(HANDLED_SIGNALS)
        else:
            info = signal.sigtimedwait(HANDLED_SIGNALS, timeout)
        if info is None:
            return None
        return Arrival(info.si_signo, info.si_pid, info.si_code)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        pending = signal.sigpending() & HANDLED_SIGNALS
        if pending:
            return Arrival(signal.sigwait(pending), None, None)
        left = _POLL_SECONDS if deadline is None else deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(left, _POLL_SECONDS))


class Terminator:
    """The signal thread's state; every method but ``timed_out`` and the notes is its own."""

    def __init__(self, grace_seconds: float, wakeup_fd: int, parent_pid: int) -> None:
        self.timed_out = False
        self._grace_seconds = grace_seconds
        self._wakeup_fd = wakeup_fd  # non-blocking; a byte wakes the main loop
        # Recorded at start-up: 0 when the wrapper is PID 1 (its parent is outside the namespace).
        self._parent_pid = parent_pid
        self._lock = threading.Lock()
        self._child: Optional[child.Child] = None
        self._deadline: Optional[float] = None  # monotonic: the timeout, then the grace's end
        self._grace_started = False
        self._done = False
        self._notes: List[str] = []
        self._ignored_said = False

    def start(self, command: child.Child, timeout_seconds: Optional[float]) -> None:
        """Watch ``command`` (signals held since start-up are taken now) and arm the timeout."""
        self._child = command
        if timeout_seconds is not None:
            self._deadline = time.monotonic() + timeout_seconds
        threading.Thread(target=self._run, name="crucible-signals", daemon=True).start()

    def disarm(self) -> None:
        """The command is gone: nothing more to forward, no timeout or grace pending."""
        with self._lock:
            self._done = True
            self._deadline = None

    def take_notes(self) -> List[str]:
        """Messages for the wrapper's stderr, written by the main thread (the signal thread must
        never block on a full stderr pipe)."""
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = self._deadline
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            arrival = next_signal(wait)
            with self._lock:
                if arrival is None:
                    self._on_deadline()
                else:
                    self._on_signal(arrival)

    def _on_signal(self, arrival: Arrival) -> None:
        if arrival.number == signal.SIGCHLD:
            self._wake()
            return
        if not self._trusted(arrival):
            self._note_ignored(arrival)
            return
        if self._done or self._child is None:
            return
        self._child.signal_group(arrival.number)
        if arrival.number == signal.SIGTERM:
            self._start_grace()

    def _on_deadline(self) -> None:
        if self._done or self._child is None or self._deadline is None:
            return
        if time.monotonic() < self._deadline:
            return
        if self._grace_started:
            self._child.kill_group()
            self._deadline = None
            return
        if self._child.has_exited():
            return  # it ended in time and only awaits reaping
        self.timed_out = True
        self._child.signal_group(signal.SIGTERM)
        self._start_grace()

    def _start_grace(self) -> None:
        if self._grace_started or self._child is None:
            return
        self._grace_started = True
        if self._grace_seconds > 0:
            self._deadline = time.monotonic() + self._grace_seconds
        else:
            self._child.kill_group()
            self._deadline = None

    def _trusted(self, arrival: Arrival) -> bool:
        if arrival.sender is None:
            return True  # no siginfo (not Linux): laptops only, where nobody is the enemy
        return arrival.code in _KERNEL_FILLED_CODES and arrival.sender in (0, self._parent_pid)

    def _note_ignored(self, arrival: Arrival) -> None:
        if self._ignored_said:
            return
        self._ignored_said = True
        self._notes.append(
            f"ignoring {signal.Signals(arrival.number).name} from pid {arrival.sender} "
            f"(code {arrival.code}): only the wrapper's parent or the container runtime may "
            "signal it; said once"
        )
        self._wake()

    def _wake(self) -> None:
        # Full: a wakeup is already pending. Closed: the wrapper is finishing.
        with contextlib.suppress(OSError):
            os.write(self._wakeup_fd, b"\0")
