"""The state directory: the contract between the wrapper (writer) and the sidecar (reader).

Layout of ``$CRUCIBLE_STATE_DIR`` (default ``/crucible/state``)::

    started.json   written once, atomically, just after the child is spawned
    stdout         the child's stdout, appended as it arrives, capped (truncation marker at the end)
    stderr         the same for stderr
    exit.json      written once, atomically, after stdout/stderr are flushed and closed
    sidecar.ready  written by the sidecar once it watches the directory
                   (startup probe, local backend)

JSON records are written to a temporary file in the same directory and renamed into place, so a
reader sees either nothing or the whole record, never half of one.

This module is imported by the sidecar, so it must stay standard-library only and valid Python 3.8.
"""

import contextlib
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

STATE_DIR_ENV = "CRUCIBLE_STATE_DIR"
DEFAULT_STATE_DIR = "/crucible/state"

STARTED_FILE = "started.json"
EXIT_FILE = "exit.json"
STDOUT_FILE = "stdout"
STDERR_FILE = "stderr"
SIDECAR_READY_FILE = "sidecar.ready"
OUTPUT_FILES = (STDOUT_FILE, STDERR_FILE)

DEFAULT_OUTPUT_CAP_BYTES = 8 * 1024 * 1024
# Appended once to a capped output file; readers may show it as is.
TRUNCATION_MARKER = b"\n[crucible: output truncated at the cap]\n"

# Exit codes the wrapper uses for its own failures (the shell's conventions).
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
EXIT_SIGNAL_BASE = 128
# The wrapper itself failed (state dir unusable, internal error): GNU timeout's and env's code.
EXIT_WRAPPER_FAILED = 125


def state_dir_from_env() -> str:
    return os.environ.get(STATE_DIR_ENV, DEFAULT_STATE_DIR)


def started_record(pid: int, command: List[str], started_at: float) -> Dict[str, Any]:
    return {"pid": pid, "command": list(command), "started_at": started_at}


def exit_record(
    exit_code: int,
    signal: Optional[int] = None,
    timed_out: bool = False,
    duration_seconds: float = 0.0,
    stdout_truncated: bool = False,
    stderr_truncated: bool = False,
    wrapper_error: Optional[str] = None,
    finished_at: Optional[float] = None,
) -> Dict[str, Any]:
    return {
        "exit_code": exit_code,
        "signal": signal,
        "timed_out": timed_out,
        "duration_seconds": duration_seconds,
        "finished_at": time.time() if finished_at is None else finished_at,
        "stdout_truncated": stdout_truncated,
        "stderr_truncated": stderr_truncated,
        "wrapper_error": wrapper_error,
    }


def write_json_atomic(directory: str, name: str, record: Dict[str, Any]) -> None:
    """Write ``record`` as ``directory/name`` so that readers never see a partial file."""
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", dir=directory)
    try:
        # mkstemp makes the file 0600; the sidecar may run as another user of the pod's fsGroup.
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # No fsync: readers are on the same kernel, and the volume dies with the pod, so
            # rename alone gives what they need (all or nothing) without a disk flush per record.
            json.dump(record, f, separators=(",", ":"))
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(directory: str, name: str) -> Optional[Dict[str, Any]]:
    """The record at ``directory/name``, or None while it does not exist (or is not a record)."""
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
