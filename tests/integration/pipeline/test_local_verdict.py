"""The local backend's verified verdict from the wrapper's real wait status (pure function).

The outcome tests run real processes; these cover what a real run cannot produce on demand:
a report that disagrees with the status, or none at all.
"""

from typing import Any

import pytest

from dispatcher.backends.local import verdict as local_verdict
from wire import events

EventType = events.EventType


def observed(returncode: int, **kwargs: Any) -> local_verdict.Observed:
    kwargs.setdefault("elapsed_seconds", 1.0)
    kwargs.setdefault("timeout_seconds", 10.0)
    return local_verdict.Observed(returncode=returncode, **kwargs)


def report(kind: EventType, exit_code: int | None, **fields: Any) -> events.Event:
    """The sidecar's terminal event, as it reaches the evaluation's stream."""
    return events.Event(
        eval_id="e", type=kind, source="sidecar", exit_code=exit_code, verified=False, **fields
    )


def captured(
    sidecar: events.Event | None, error: str = "", truncated: bool = False
) -> local_verdict.Captured:
    return local_verdict.Captured(report=sidecar, output="out", error=error, truncated=truncated)


def test_an_honest_report_gives_the_sidecars_verdict() -> None:
    event = local_verdict.verdict(
        "e", observed(0), captured(report(EventType.COMPLETED, 0, duration_seconds=0.5))
    )
    assert (event.type, event.exit_code, event.reason) == (EventType.COMPLETED, 0, None)
    assert (event.source, event.verified, event.duration_seconds) == ("dispatcher", True, 0.5)
    assert (event.output, event.truncated) == ("out", False)


def test_a_report_claiming_success_is_corrected_by_the_real_exit_status() -> None:
    forged = report(EventType.COMPLETED, 0, duration_seconds=0.5, truncated=True)
    event = local_verdict.verdict("e", observed(3), captured(forged))
    assert (event.type, event.exit_code, event.reason) == (
        EventType.FAILED,
        3,
        local_verdict.NO_REPORT_REASON,
    )
    # Nothing of a report that is not the wrapper's counts.
    assert (event.duration_seconds, event.truncated) == (1.0, False)


def test_a_wrapper_killed_without_a_report_fails_with_128_plus_n() -> None:
    event = local_verdict.verdict("e", observed(-9), captured(None))
    assert (event.type, event.exit_code, event.signal) == (EventType.FAILED, 137, 9)
    assert event.reason == local_verdict.NO_REPORT_REASON
    assert (event.verified, event.duration_seconds) == (True, 1.0)


def test_without_a_report_a_clean_exit_still_completes_and_says_so() -> None:
    event = local_verdict.verdict("e", observed(0), captured(None))
    assert (event.type, event.exit_code, event.reason) == (
        EventType.COMPLETED,
        0,
        local_verdict.NO_REPORT_REASON,
    )


@pytest.mark.parametrize("sidecar", [None, report(EventType.COMPLETED, 0)])
def test_a_wrapper_that_never_held_its_channel_fails_and_keeps_no_output(
    sidecar: events.Event | None,
) -> None:
    """Exit 125 before the command started: what the sidecar got is someone else's."""
    never = local_verdict.verdict(
        "e", observed(125, command_started=False), captured(sidecar, "err", truncated=True)
    )
    assert (never.type, never.exit_code, never.reason) == (
        EventType.FAILED,
        125,
        local_verdict.WRAPPER_FAILED_REASON,
    )
    assert (never.output, never.error, never.truncated) == ("", "", False)


def test_a_command_that_exits_125_after_its_channel_was_lost_keeps_its_output() -> None:
    event = local_verdict.verdict("e", observed(125), captured(None, "err"))
    assert (event.type, event.reason) == (EventType.FAILED, local_verdict.NO_REPORT_REASON)
    assert (event.output, event.error) == ("out", "err")


def test_without_a_report_a_failure_after_the_timeout_is_a_timeout() -> None:
    late = local_verdict.verdict("e", observed(143, elapsed_seconds=10.2), captured(None))
    assert (late.type, late.reason) == (EventType.TIMEOUT, "timeout after 10s")


def test_the_childs_signal_is_kept_when_the_status_matches_it() -> None:
    sidecar = report(EventType.FAILED, 143, signal=15)
    event = local_verdict.verdict("e", observed(143), captured(sidecar))
    assert (event.type, event.exit_code, event.signal) == (EventType.FAILED, 143, 15)
    other = local_verdict.verdict("e", observed(1), captured(sidecar))
    assert (other.exit_code, other.signal) == (1, None)


def test_a_timeout_flag_counts_only_after_the_timeout() -> None:
    sidecar = report(EventType.TIMEOUT, 143, signal=15, reason="timeout after 10s")
    early = local_verdict.verdict("e", observed(143, elapsed_seconds=0.2), captured(sidecar))
    late = local_verdict.verdict("e", observed(143, elapsed_seconds=10.5), captured(sidecar))
    assert (early.type, early.reason) == (EventType.FAILED, None)
    assert (late.type, late.reason) == (EventType.TIMEOUT, "timeout after 10s")


def test_a_reported_duration_counts_only_within_the_observed_one() -> None:
    honest = report(EventType.FAILED, 1, duration_seconds=0.25)
    inflated = report(EventType.FAILED, 1, duration_seconds=99.0)
    assert local_verdict.verdict("e", observed(1), captured(honest)).duration_seconds == 0.25
    assert local_verdict.verdict("e", observed(1), captured(inflated)).duration_seconds == 1.0


def test_the_backstop_deadline_is_a_timeout_whatever_the_report_says() -> None:
    event = local_verdict.verdict(
        "e", observed(-9, deadline_hit=True), captured(report(EventType.COMPLETED, 0))
    )
    assert (event.type, event.exit_code) == (EventType.TIMEOUT, 137)


def test_cancel_wins_over_what_the_killed_process_reports() -> None:
    event = local_verdict.verdict(
        "e",
        observed(143, cancel_reason="by request"),
        captured(report(EventType.FAILED, 143, signal=15)),
    )
    assert (event.type, event.reason) == (EventType.CANCELLED, "by request")


@pytest.mark.parametrize(
    ("memory_limited", "stderr", "reason"),
    [
        (True, "Traceback (most recent call last):\nMemoryError\n", "MemoryLimit"),
        (True, "ValueError: no\n", None),
        (False, "MemoryError\n", None),
    ],
)
def test_memory_limit_is_named_only_under_a_limit(
    memory_limited: bool, stderr: str, reason: str | None
) -> None:
    event = local_verdict.verdict(
        "e",
        observed(1, memory_limited=memory_limited),
        captured(report(EventType.FAILED, 1), stderr),
    )
    assert (event.type, event.reason) == (EventType.FAILED, reason)


def test_the_wrappers_own_error_is_an_error_event() -> None:
    sidecar = report(EventType.ERROR, 127, reason="command not found: nope")
    event = local_verdict.verdict("e", observed(127), captured(sidecar))
    assert (event.type, event.reason) == (EventType.ERROR, "command not found: nope")


@pytest.mark.parametrize(
    ("in_spool", "in_report", "truncated"),
    [(False, False, False), (True, False, True), (False, True, True)],
)
def test_truncation_is_said_by_the_spool_or_the_report(
    in_spool: bool, in_report: bool, truncated: bool
) -> None:
    sidecar = report(EventType.COMPLETED, 0, truncated=in_report)
    event = local_verdict.verdict("e", observed(0), captured(sidecar, truncated=in_spool))
    assert event.truncated is truncated
