"""Resource limits of a local evaluation, applied with setrlimit between fork and exec.

What a pod gets from its cgroup, a local process gets approximately from rlimits, which apply
per process (the wrapper and each of its children), not to the evaluation as a whole:

- memory -> ``RLIMIT_AS`` (address space). An allocation beyond it fails (``MemoryError`` in
  Python, ``ENOMEM`` elsewhere) instead of an OOM kill. Python needs some address space just to
  start, so a limit below ``LocalConfig.memory_floor_bytes`` is raised to it;
- cpu -> ignored: a CPU *rate* (``500m``) has no rlimit; the wall-clock timeout bounds the run;
- files -> ``RLIMIT_FSIZE`` so user code cannot fill the disk (the process gets SIGXFSZ);
- core dumps -> off; processes -> ``RLIMIT_NPROC`` only if configured, because it counts every
  process of the user, the dispatcher's included (and is ignored for root);
- priority -> ``nice`` if configured; 0 by default, because the wrapper shares it and it is on
  the path that reports the end.
"""

import dataclasses
import os
import resource
import signal
from collections.abc import Callable

from dispatcher.backends.local import process as local_process


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_bytes: int | None
    file_bytes: int | None
    processes: int | None
    nice: int

    def preexec(self) -> Callable[[], None]:
        """The preexec function for the wrapper: limits, priority, and death with the parent.

        The parent-death signal is SIGTERM, which the wrapper forwards to the evaluation's
        process group before it exits.
        """
        die_with_parent = local_process.die_with_parent(signal.SIGTERM)

        def preexec() -> None:
            _set(resource.RLIMIT_CORE, 0)
            if self.memory_bytes is not None:
                _set(resource.RLIMIT_AS, self.memory_bytes)
            if self.file_bytes is not None:
                _set(resource.RLIMIT_FSIZE, self.file_bytes)
            if self.processes is not None:
                _set(resource.RLIMIT_NPROC, self.processes)
            if self.nice:
                os.nice(self.nice)
            die_with_parent()

        return preexec


def _set(which: int, value: int) -> None:
    # Never above the current hard limit: raising it needs privileges and would fail the spawn.
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, value))
