"""The local backend's verified verdict: what the wrapper's real exit status says happened.

The wrapper's ``exit.json`` sits in a directory the user's code can write, so it is read for
detail (duration, timeout flag, truncation, the wrapper's own error) but the exit code comes from
the wrapper *process*, which the backend started and reaped itself. This plays the part the
kubelet's container status plays for the Kubernetes backend.
"""

import dataclasses
from typing import Any

import pydantic

from sidecar import builders, events

# Last lines of stderr that mean an allocation failed under RLIMIT_AS (Python, libc, C++, Go).
_MEMORY_MARKERS = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_MEMORY_MARKER_WINDOW = 2048


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the backend saw of one wrapper run."""

    returncode: int
    """As asyncio reports it: negative -N if the wrapper itself died of signal N."""
    elapsed_seconds: float
    """From spawning the wrapper to reaping it."""
    timeout_seconds: float
    cancel_reason: str | None = None
    """Why the backend cancelled the run, if it did."""
    deadline_hit: bool = False
    """The backend's backstop killed the process group (the wrapper's own timer did not)."""
    memory_limited: bool = False


@dataclasses.dataclass(frozen=True)
class Captured:
    """What the wrapper left in the state directory."""

    exit_record: dict[str, Any] | None
    output: str
    error: str
    truncated: bool


def verdict(eval_id: str, observed: Observed, captured: Captured) -> events.Event:
    exit_code, sig = _real_status(observed.returncode, captured.exit_record)
    record = captured.exit_record or {}
    duration = _duration(record, observed.elapsed_seconds)
    event_type, reason = _classify(observed, captured, exit_code)
    return events.Event(
        eval_id=eval_id,
        type=event_type,
        source="dispatcher",
        reason=reason,
        exit_code=exit_code,
        signal=sig,
        duration_seconds=duration,
        output=events.tail(captured.output),
        error=events.tail(captured.error),
        truncated=captured.truncated,
        verified=True,
    )


def error_verdict(eval_id: str, reason: str) -> events.Event:
    """The evaluation could not be run at all (no sidecar, no wrapper)."""
    return events.Event(
        eval_id=eval_id,
        type=events.EventType.ERROR,
        source="dispatcher",
        reason=reason,
        verified=True,
    )


def _real_status(returncode: int, record: dict[str, Any] | None) -> tuple[int, int | None]:
    """Exit code and signal as a container runtime would report them."""
    if returncode < 0:
        return 128 - returncode, -returncode
    # The wrapper exits 128+N when its child died of signal N; the record names N.
    recorded_signal = record.get("signal") if record else None
    if isinstance(recorded_signal, int) and returncode == 128 + recorded_signal:
        return returncode, recorded_signal
    return returncode, None


def _duration(record: dict[str, Any], elapsed: float) -> float:
    recorded = record.get("duration_seconds")
    if isinstance(recorded, int | float) and 0 <= recorded <= elapsed:
        return float(recorded)
    return elapsed


def _classify(
    observed: Observed, captured: Captured, exit_code: int
) -> tuple[events.EventType, str | None]:
    if observed.cancel_reason is not None:
        return events.EventType.CANCELLED, observed.cancel_reason
    if observed.deadline_hit:
        return events.EventType.TIMEOUT, f"timeout after {observed.timeout_seconds:g}s (killed)"
    try:
        record = builders.ExitRecord.model_validate(captured.exit_record)
    except pydantic.ValidationError:
        return events.EventType.ERROR, f"WrapperDied: exit status {exit_code}, no exit record"
    # Where the record is honest, the verdict is the sidecar's (same builder, same type and
    # reason), so the store confirms rather than corrects it.
    event_type, reason = builders.terminal_type(record), builders.terminal_reason(record)
    lied = record.exit_code != exit_code
    # A timeout flag counts only if the run really lasted that long.
    short = event_type is events.EventType.TIMEOUT and (
        observed.elapsed_seconds < observed.timeout_seconds
    )
    if lied or short:
        event_type, reason = _by_exit_code(exit_code), None
    if (
        event_type is events.EventType.FAILED
        and observed.memory_limited
        and _looks_out_of_memory(captured.error)
    ):
        reason = "MemoryLimit"
    return event_type, reason


def _by_exit_code(exit_code: int) -> events.EventType:
    return events.EventType.COMPLETED if exit_code == 0 else events.EventType.FAILED


def _looks_out_of_memory(stderr: str) -> bool:
    window = stderr[-_MEMORY_MARKER_WINDOW:]
    return any(marker in window for marker in _MEMORY_MARKERS)
