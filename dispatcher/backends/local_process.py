"""Child-process plumbing for the local backend and the embedded Redis: tie a child's life to
the dispatcher's, and stop a process group.

Children started here get a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), so a
dispatcher that dies, even by SIGKILL, does not leave servers or evaluations behind. The kernel
sends it when the *thread* that forked exits, so spawn from the event-loop (main) thread, never
from a short-lived worker thread.
"""

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1

# Loaded now: a preexec function runs between fork and exec, where loading a library can
# deadlock on locks another thread held at fork time.
_libc: ctypes.CDLL | None = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if sys.platform.startswith("linux")
    else None
)


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A preexec function: deliver ``sig`` to the child when this process dies."""
    parent = os.getpid()

    def preexec() -> None:
        if _libc is None:
            return
        _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False if the group no longer exists. Never to our own
    group: a group id may come from a state file that user code can write."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
