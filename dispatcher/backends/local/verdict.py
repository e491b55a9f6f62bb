"""The local backend's verified verdict: what the wrapper's real wait status says happened.

The exit code comes from the wrapper *process*, which the backend started and reaped itself;
this plays the part the kubelet's container status plays for the Kubernetes backend. Details
the status cannot give (the timeout flag, the wrapper's own error, the child's signal, the
duration) come from the sidecar's report, the wrapper's exit record as it came over the channel
(``local_capture``), and count only where the report names the exit code the status gives.
Without such a report (the channel was lost, e.g. the wrapper was killed), the status speaks
alone and the reason says so.
"""

import dataclasses

from wire import channel, events

EventType = events.EventType

NO_REPORT_REASON = "no exit report from the wrapper; verdict from the process's wait status"
WRAPPER_FAILED_REASON = (
    f"WrapperFailed: exit status {channel.EXIT_WRAPPER_FAILED} and no exit report: the wrapper "
    "never held its channel to the sidecar, so the command never ran"
)
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
    command_started: bool = True
    """The backend saw the wrapper fork its command (``local_process.first_child``)."""


@dataclasses.dataclass(frozen=True)
class Captured:
    """What the backend collected after the run (``local_capture``)."""

    report: events.Event | None
    """The sidecar's terminal event; None if it published none."""
    output: str
    error: str
    truncated: bool
    """A spool file ends with the truncation marker."""


def verdict(eval_id: str, observed: Observed, captured: Captured) -> events.Event:
    exit_code = _exit_code(observed.returncode)
    report = _wrappers(captured.report, exit_code)
    # Exit 125 with no channel: the command never ran, and whatever the sidecar holds came
    # from someone else (on the local backend, other code of the same user can connect first).
    never_ran = (
        report is None
        and observed.returncode == channel.EXIT_WRAPPER_FAILED
        and not observed.command_started
    )
    output, error = ("", "") if never_ran else (captured.output, captured.error)
    event_type, reason = _classify(observed, report, exit_code, error, never_ran=never_ran)
    return events.Event(
        eval_id=eval_id,
        type=event_type,
        source="dispatcher",
        reason=reason,
        exit_code=exit_code,
        signal=_signal(observed.returncode, report),
        duration_seconds=_duration(report, observed.elapsed_seconds),
        output=events.tail(output),
        error=events.tail(error),
        truncated=not never_ran and (captured.truncated or bool(report and report.truncated)),
        verified=True,
    )


def error_verdict(eval_id: str, reason: str) -> events.Event:
    """The evaluation could not be run at all (no sidecar, no wrapper)."""
    return events.Event(
        eval_id=eval_id,
        type=EventType.ERROR,
        source="dispatcher",
        reason=reason,
        verified=True,
    )


def _exit_code(returncode: int) -> int:
    """As a container runtime reports it: 128+N if the wrapper itself died of signal N."""
    return channel.EXIT_SIGNAL_BASE - returncode if returncode < 0 else returncode


def _wrappers(report: events.Event | None, exit_code: int) -> events.Event | None:
    """The report, if it can be the wrapper's: the wrapper exits with the code its exit record
    names, so a report naming another one came from someone else on the channel (or the wrapper
    was killed right after sending it); either way the status speaks alone."""
    return report if report is not None and report.exit_code == exit_code else None


def _signal(returncode: int, report: events.Event | None) -> int | None:
    if returncode < 0:
        return -returncode
    # The wrapper exits 128+N when its child died of signal N; the report names N.
    named = report.signal if report is not None else None
    if named is not None and returncode == channel.EXIT_SIGNAL_BASE + named:
        return named
    return None


def _duration(report: events.Event | None, elapsed: float) -> float:
    reported = report.duration_seconds if report is not None else None
    if reported is not None and 0 <= reported <= elapsed:
        return reported
    return elapsed


def _classify(
    observed: Observed,
    report: events.Event | None,
    exit_code: int,
    stderr: str,
    *,
    never_ran: bool,
) -> tuple[EventType, str | None]:
    if observed.cancel_reason is not None:
        return EventType.CANCELLED, observed.cancel_reason
    if observed.deadline_hit:
        return EventType.TIMEOUT, f"timeout after {observed.timeout_seconds:g}s (killed)"
    if never_ran:
        # ``failed``, as the kubelet records a container that exits 125.
        return EventType.FAILED, WRAPPER_FAILED_REASON
    if report is None:
        event_type, reason = _without_report(observed, exit_code)
    elif report.type is EventType.TIMEOUT and observed.elapsed_seconds < observed.timeout_seconds:
        # A timeout flag counts only if the run really lasted that long.
        event_type, reason = _by_exit_code(exit_code), None
    else:
        # The sidecar's own verdict (same type and reason): the store confirms, not corrects.
        event_type, reason = report.type, report.reason
    if event_type is EventType.FAILED and observed.memory_limited and _looks_out_of_memory(stderr):
        reason = "MemoryLimit"
    return event_type, reason


def _without_report(observed: Observed, exit_code: int) -> tuple[EventType, str | None]:
    if exit_code != 0 and observed.elapsed_seconds >= observed.timeout_seconds:
        # As the reconciler reads a kubelet record: it failed once its time was up.
        return EventType.TIMEOUT, f"timeout after {observed.timeout_seconds:g}s"
    return _by_exit_code(exit_code), NO_REPORT_REASON


def _by_exit_code(exit_code: int) -> EventType:
    return EventType.COMPLETED if exit_code == 0 else EventType.FAILED


def _looks_out_of_memory(stderr: str) -> bool:
    window = stderr[-_MEMORY_MARKER_WINDOW:]
    return any(marker in window for marker in _MEMORY_MARKERS)
