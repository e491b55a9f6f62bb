"""Make a process non-dumpable: the wrapper before user code exists, and the sidecar.

Standard library only, valid Python 3.8: packed into the wrapper's zipapp with ``channel``.

User code runs as the wrapper's own UID, so ordinary permission checks do not protect the wrapper
from it. A non-dumpable process is another matter: the kernel then demands CAP_SYS_PTRACE to
ptrace it or to open ``/proc/<pid>/fd``, ``/proc/<pid>/mem`` or ``/proc/<pid>/environ``, so user
code cannot steal the channel's socket or rewrite the wrapper's memory. The flag survives fork
only until exec, so the command itself is dumpable again as usual.
"""

import sys

# <linux/prctl.h>; the stdlib has no names for them.
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


class HardeningError(Exception):
    """The wrapper could not protect itself; user code must not run."""


def make_undumpable() -> None:
    """``prctl(PR_SET_DUMPABLE, 0)`` on Linux, checked; elsewhere (laptops) nothing to do."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes  # here, not at the top: only Linux needs it, and it costs start-up time

        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        errno = ctypes.get_errno()
        dumpable = libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0)
    except (ImportError, OSError, AttributeError) as error:
        raise HardeningError(f"cannot call prctl to become non-dumpable: {error}") from error
    if result != 0 or dumpable != 0:
        raise HardeningError(
            f"prctl(PR_SET_DUMPABLE, 0) failed (result {result}, errno {errno}, "
            f"dumpable now {dumpable})"
        )
