"""The local backend's verified verdict from the wrapper's real exit status (pure function).

The outcome tests run real processes; these cover what a real run cannot produce on demand:
an exit record that lies, or none at all.
"""

from typing import Any

import pytest

from dispatcher.backends import local_verdict
from sidecar import events
from wrapper import state

EventType = events.EventType


def observed(returncode: int, **kwargs: Any) -> local_verdict.Observed:
    kwargs.setdefault("elapsed_seconds", 1.0)
    kwargs.setdefault("timeout_seconds", 10.0)
    return local_verdict.Observed(returncode=returncode, **kwargs)


def captured(record: dict[str, Any] | None, error: str = "") -> local_verdict.Captured:
    return local_verdict.Captured(exit_record=record, output="out", error=error, truncated=False)


def test_an_honest_record_gives_the_sidecars_verdict() -> None:
    event = local_verdict.verdict(
        "e", observed(0), captured(state.exit_record(0, duration_seconds=0.5))
    )
    assert (event.type, event.exit_code, event.reason) == (EventType.COMPLETED, 0, None)
    assert (event.source, event.verified, event.duration_seconds) == ("dispatcher", True, 0.5)


def test_a_record_claiming_success_is_corrected_by_the_real_exit_status() -> None:
    event = local_verdict.verdict("e", observed(3), captured(state.exit_record(0)))
    assert (event.type, event.exit_code) == (EventType.FAILED, 3)


def test_a_wrapper_killed_by_a_signal_fails_with_128_plus_n() -> None:
    event = local_verdict.verdict("e", observed(-9), captured(None))
    assert (event.type, event.exit_code, event.signal) == (EventType.ERROR, 137, 9)
    assert event.reason is not None
    assert "no exit record" in event.reason


def test_the_childs_signal_is_kept_when_the_status_matches_it() -> None:
    record = state.exit_record(128 + 15, signal=15)
    event = local_verdict.verdict("e", observed(143), captured(record))
    assert (event.type, event.exit_code, event.signal) == (EventType.FAILED, 143, 15)


def test_a_timeout_flag_counts_only_after_the_timeout() -> None:
    record = state.exit_record(143, signal=15, timed_out=True, duration_seconds=0.1)
    early = local_verdict.verdict("e", observed(143, elapsed_seconds=0.2), captured(record))
    late = local_verdict.verdict("e", observed(143, elapsed_seconds=10.5), captured(record))
    assert early.type == EventType.FAILED
    assert late.type == EventType.TIMEOUT


def test_the_backstop_deadline_is_a_timeout_whatever_the_record_says() -> None:
    event = local_verdict.verdict(
        "e", observed(-9, deadline_hit=True), captured(state.exit_record(0))
    )
    assert (event.type, event.exit_code) == (EventType.TIMEOUT, 137)


def test_cancel_wins_over_what_the_killed_process_reports() -> None:
    event = local_verdict.verdict(
        "e", observed(143, cancel_reason="by request"), captured(state.exit_record(143, signal=15))
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
        "e", observed(1, memory_limited=memory_limited), captured(state.exit_record(1), stderr)
    )
    assert (event.type, event.reason) == (EventType.FAILED, reason)


def test_the_wrappers_own_error_is_an_error_event() -> None:
    record = state.exit_record(127, wrapper_error="command not found: nope")
    event = local_verdict.verdict("e", observed(127), captured(record))
    assert (event.type, event.reason) == (EventType.ERROR, "command not found: nope")
