"""Child-process plumbing for the local backend and the embedded Redis: tie a child's life to
the dispatcher's, and stop a process group or a whole session.

Children started here get a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), so a
dispatcher that dies, even by SIGKILL, does not leave servers or evaluations behind. The kernel
sends it when the *thread* that forked exits, so spawn from the event-loop (main) thread, never
from a short-lived worker thread.
"""

import asyncio
import ctypes
import ctypes.util
import itertools
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_KILL_ROUNDS = 10
# Checks for a process's first child: often at first (it forks within milliseconds), then less so.
_CHILD_POLL_SECONDS = (0.001, 0.002, 0.005, 0.01, 0.02)

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
    group."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def first_child(process: asyncio.subprocess.Process) -> int | None:
    """The pid of the first child ``process`` forks, watched from ``/proc`` while it runs;
    None if it ends first. The wrapper's only child is the command, which leads a session of
    its own: learnt here, that session can be ended even if the wrapper is killed first."""
    for delay in itertools.chain(_CHILD_POLL_SECONDS, itertools.repeat(_CHILD_POLL_SECONDS[-1])):
        found = children(process.pid)
        if found:
            return found[0]
        if process.returncode is not None:
            return None
        await asyncio.sleep(delay)
    return None


def children(pid: int) -> list[int]:
    """Live children of ``pid`` (``/proc/<pid>/task/<pid>/children``: those its main thread
    forked, readable even for a non-dumpable process of our user)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def kill_session(sid: int) -> int:
    """SIGKILL every process of session ``sid`` (Linux ``/proc``); how many were killed.

    Whatever a command left behind in its session, in any process group, is found without
    asking anyone for a pid. (A process that called setsid() itself has left, as user code of
    the dispatcher's own user can.) The session id stays reserved while any member lives, so
    it cannot name someone else's processes. Rounds repeat until a scan finds none, for
    children forked between a scan and the kill.
    """
    if sid <= 1 or sid == os.getsid(0):
        return 0
    killed = 0
    for _ in range(_KILL_ROUNDS):
        members = _session_members(sid)
        if not members:
            break
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 3 and fields[0] != b"Z" and int(fields[3]) == sid:
            members.append(int(name))
    return members
