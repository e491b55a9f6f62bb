"""Settings group of the local backend (owner: dispatcher/backends/local/backend.py)."""

import pydantic


class LocalConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True)

    concurrency: int = pydantic.Field(default=4, ge=0)
    """Evaluations running at once; 0 queues without running (throughput benchmarks)."""

    queue_size: int = pydantic.Field(default=100, ge=0)
    """Accepted evaluations waiting for a slot; beyond this the API answers 429."""

    work_root: str | None = None
    """Directory that holds one work directory per evaluation (its cwd and HOME), the private
    directories of the runs (sidecar socket, spool, log) and the built wrapper (layout:
    ``local_dirs``). None: a fresh temporary directory, removed when the backend closes."""

    keep_work_dirs: bool = False
    """Keep each evaluation's work and private directories after it ends (debugging)."""

    sidecar_ready_timeout_seconds: float = pydantic.Field(default=30.0, gt=0)
    """How long a sidecar may take to listen on its socket before the evaluation ends as
    ``error``; also the wrapper's ``--connect-timeout``. Generous: a cold Python start on a busy
    laptop can take seconds."""

    sidecar_exit_timeout_seconds: float = pydantic.Field(default=10.0, gt=0)
    """How long a sidecar may take to publish and exit after the wrapper; then it is killed."""

    kill_grace_seconds: float = pydantic.Field(default=5.0, ge=0)
    """Between SIGTERM and SIGKILL, on cancel and on timeout (passed to the wrapper as
    ``--grace``), as a pod's terminationGracePeriodSeconds."""

    deadline_margin_seconds: float = pydantic.Field(default=10.0, ge=0)
    """The backstop beyond timeout + grace after which the backend kills the process group
    itself, if the wrapper has not (as a Job's activeDeadlineSeconds)."""

    memory_floor_bytes: int = pydantic.Field(default=64 * 2**20, ge=0)
    """Smallest address-space limit applied: a Python interpreter needs about 20 MiB of
    address space to start and more per thread, so a tiny request would fail at start."""

    max_file_bytes: int | None = pydantic.Field(default=2**30, ge=0)
    """RLIMIT_FSIZE of evaluation processes: the largest file they may write. None: no limit."""

    max_processes: int | None = pydantic.Field(default=None, ge=1)
    """RLIMIT_NPROC of evaluation processes. Off by default: it counts every process of the
    user running the dispatcher, not just the evaluation's, and root ignores it."""

    nice: int = pydantic.Field(default=0, ge=0, le=19)
    """Niceness of evaluation processes. Above 0, CPU-bound user code cannot starve the
    dispatcher and sidecars; but the wrapper shares it and is on the path that reports the end,
    so under load the end is heard later (bench/latency.py: p50 about twice as long at 5)."""

    expected_run_seconds: float = pydantic.Field(default=5.0, gt=0)
    """First guess at an evaluation's run time for the 429 Retry-After estimate; replaced by a
    moving average of observed run times."""

    drain_seconds: float = pydantic.Field(default=0.0, ge=0)
    """On shutdown, how long running evaluations may go on before they are cancelled (queued
    ones are cancelled at once). 0: cancel at once, as a laptop user pressing Ctrl-C expects."""
