"""The pure status rules (the Lua script is checked against them on a real Redis)."""

from typing import Any

import pytest

from dispatcher.store import consumer
from dispatcher.store.records import Status
from tests import status_model as statuses
from wire import events


def record(**fields: Any) -> dict[str, Any]:
    return {"status": "accepted", "last_seq": 0, "verified": False, **fields}


def event(seq: int, kind: str, **fields: Any) -> events.Event:
    fields.setdefault("source", "sidecar")
    return events.Event(eval_id="e", seq=seq, type=events.EventType(kind), ts=10.0, **fields)


def run(*sequence: events.Event, start: dict[str, Any] | None = None) -> dict[str, Any]:
    current = start or record()
    for item in sequence:
        changes = statuses.transition(current, item)
        if changes is not None:
            current = statuses.applied(current, changes)
    return current


def test_progress_moves_forward_and_records_times():
    result = run(
        event(1, "accepted", source="dispatcher"),
        event(2, "scheduled", job_name="j", source="dispatcher"),
        event(3, "running", started_at=11.0),
    )
    assert (result["status"], result["job_name"], result["scheduled_at"], result["started_at"]) == (
        "running",
        "j",
        10.0,
        11.0,
    )


def test_pending_reason_is_kept_until_running():
    pending = run(event(1, "pending", reason="ImagePullBackOff", source="dispatcher"))
    assert (pending["status"], pending["reason"]) == ("pending", "ImagePullBackOff")
    assert "reason" not in run(event(2, "running"), start=pending)


def test_progress_never_goes_back_and_never_overrides_an_end():
    running = run(event(1, "running"))
    assert run(event(2, "pending", reason="x"), start=running)["status"] == "running"
    done = run(event(2, "completed", exit_code=0), start=running)
    assert run(event(3, "running"), start=done)["status"] == "completed"


def test_first_terminal_event_sets_the_verdict_exactly():
    result = run(
        event(
            1, "timeout", reason="timeout after 1s", exit_code=143, signal=15, duration_seconds=1.0
        )
    )
    assert {
        k: result.get(k)
        for k in ("status", "exit_code", "signal", "reason", "finished_at", "verified")
    } == {
        "status": "timeout",
        "exit_code": 143,
        "signal": 15,
        "reason": "timeout after 1s",
        "finished_at": 10.0,
        "verified": False,
    }


def test_later_unverified_terminal_events_are_ignored():
    done = run(event(1, "completed", exit_code=0))
    later = run(
        event(2, "failed", exit_code=1),
        event(3, "error", reason="x", source="dispatcher"),
        start=done,
    )
    assert (later["status"], later["exit_code"], later["last_seq"]) == ("completed", 0, 3)


def test_verified_confirmation_without_disagreement_only_sets_verified():
    done = run(event(1, "failed", exit_code=2))
    confirmed = run(event(2, "failed", exit_code=2, source="dispatcher", verified=True), start=done)
    assert confirmed["verified"] is True
    assert "correction" not in confirmed


def test_verified_verdict_corrects_exit_code_and_says_so():
    done = run(event(1, "failed", exit_code=1))
    corrected = run(
        event(2, "failed", exit_code=137, signal=9, source="dispatcher", verified=True), start=done
    )
    assert (corrected["exit_code"], corrected["signal"]) == (137, 9)
    assert corrected["correction"] == "exit_code 1 -> 137"


def test_verified_oom_after_sidecar_completed_changes_the_status():
    done = run(event(1, "completed", exit_code=0))
    oom = run(
        event(2, "failed", exit_code=137, reason="OOMKilled", source="dispatcher", verified=True),
        start=done,
    )
    assert (oom["status"], oom["reason"], oom["verified"]) == ("failed", "OOMKilled", True)
    assert (
        oom["correction"]
        == "status completed -> failed, exit_code 0 -> 137, reason none -> OOMKilled"
    )


@pytest.mark.parametrize("verified_type", ["timeout", "error"])
def test_a_verified_end_of_any_kind_overrides_a_claim_of_success(verified_type: str):
    claimed = run(event(1, "completed", exit_code=0))
    verified = run(
        event(2, verified_type, exit_code=125, reason="WrapperFailed", source="dispatcher",
              verified=True),
        start=claimed,
    )  # fmt: skip
    assert (verified["status"], verified["exit_code"]) == (verified_type, 125)
    assert verified["correction"].startswith(f"status completed -> {verified_type}")


def test_only_the_first_verification_counts():
    confirmed = run(
        event(1, "completed", exit_code=0),
        event(2, "completed", exit_code=0, source="dispatcher", verified=True),
    )
    again = run(
        event(3, "failed", exit_code=1, source="dispatcher", verified=True), start=confirmed
    )
    assert (again["status"], again["exit_code"]) == ("completed", 0)


def test_verified_claims_from_the_sidecar_are_not_verification():
    done = run(event(1, "completed", exit_code=0))
    claimed = run(event(2, "failed", exit_code=1, verified=True), start=done)
    assert (claimed["status"], claimed["verified"]) == ("completed", False)


def test_timeout_and_error_statuses_stay_but_fields_are_corrected():
    timed_out = run(event(1, "timeout", exit_code=143, reason="timeout after 1s"))
    verified = run(
        event(2, "failed", exit_code=137, source="dispatcher", verified=True), start=timed_out
    )
    assert (verified["status"], verified["exit_code"]) == ("timeout", 137)


def test_replays_and_stale_events_are_ignored():
    done = run(event(5, "completed", exit_code=0))
    assert statuses.transition(done, event(5, "completed", exit_code=0)) is None
    assert statuses.transition(done, event(4, "running")) is None


def test_output_only_advances_last_seq():
    assert statuses.transition(
        record(), event(1, "output", stream="stdout", offset=0, data="x")
    ) == {"last_seq": 1}


def verified_verdict(seq: int, kind: str, **fields: Any) -> events.Event:
    return event(seq, kind, source="dispatcher", verified=True, **fields)


def sidecar_end(seq: int, kind: str = "completed", **fields: Any) -> events.Event:
    defaults: dict[str, Any] = {
        "exit_code": 0,
        "duration_seconds": 1.75,
        "output": "hello\n",
        "error": "warning\n",
        "truncated": False,
        "verified": False,
    }
    return event(seq, kind, **{**defaults, **fields})


def test_sidecar_end_after_the_verified_verdict_fills_in_output_and_duration():
    result = run(
        verified_verdict(1, "completed", exit_code=0),
        sidecar_end(2, started_at=7.5),
    )
    assert {
        k: result.get(k)
        for k in (
            "status",
            "exit_code",
            "reason",
            "verified",
            "output",
            "error",
            "truncated",
            "duration_seconds",
            "started_at",
            "finished_at",
            "last_seq",
        )
    } == {
        "status": "completed",
        "exit_code": 0,
        "reason": None,
        "verified": True,
        "output": "hello\n",
        "error": "warning\n",
        "truncated": False,
        "duration_seconds": 1.75,
        "started_at": 7.5,
        "finished_at": 10.0,
        "last_seq": 2,
    }
    assert "correction" not in result


def test_the_verified_verdict_stays_authoritative_over_a_later_sidecar_end():
    oom = run(
        verified_verdict(1, "failed", exit_code=137, signal=9, reason="OOMKilled"),
        sidecar_end(2, exit_code=0, signal=15, reason="other"),
    )
    assert (oom["status"], oom["exit_code"], oom["signal"], oom["reason"]) == (
        "failed",
        137,
        9,
        "OOMKilled",
    )
    assert (oom["verified"], oom["output"], oom["duration_seconds"]) == (True, "hello\n", 1.75)
    assert "correction" not in oom


def test_fill_in_keeps_what_the_record_has_and_replaces_only_empty_text():
    ended = run(
        verified_verdict(1, "failed", exit_code=1, duration_seconds=2.0),
        event(2, "failed", exit_code=1, output="", truncated=False),
    )
    later = run(sidecar_end(3, "failed", exit_code=1, truncated=True), start=ended)
    assert (later["duration_seconds"], later["truncated"]) == (2.0, False)
    assert (later["output"], later["error"]) == ("hello\n", "warning\n")


def test_fill_in_takes_a_signal_only_for_the_same_exit_code():
    ended = run(verified_verdict(1, "failed", exit_code=137))
    assert "signal" not in run(sidecar_end(2, "failed", exit_code=1, signal=15), start=ended)
    assert run(sidecar_end(2, "failed", exit_code=137, signal=9), start=ended)["signal"] == 9


def test_cancelled_stays_cancelled_but_gains_the_sidecar_output():
    cancelled = run(event(1, "cancelled", reason="cancelled by request", source="dispatcher"))
    result = run(sidecar_end(2, "failed", exit_code=143, signal=15), start=cancelled)
    assert (result["status"], result["reason"], result["verified"]) == (
        "cancelled",
        "cancelled by request",
        False,
    )
    assert "exit_code" not in result
    assert "signal" not in result
    assert (result["output"], result["duration_seconds"]) == ("hello\n", 1.75)


def test_late_running_after_the_end_fills_only_a_missing_started_at():
    ended = run(verified_verdict(1, "completed", exit_code=0))
    late = run(event(2, "running", started_at=3.0), start=ended)
    assert (late["status"], late["started_at"]) == ("completed", 3.0)
    again = run(event(3, "running", started_at=4.0), start=late)
    assert again["started_at"] == 3.0
    # Without its own started_at, a late running event's send time is no start time.
    assert "started_at" not in run(event(2, "running"), start=ended)


@pytest.mark.parametrize("status", [s.value for s in Status])
@pytest.mark.parametrize("source", ["sidecar", "dispatcher"])
def test_the_events_the_consumer_skips_change_nothing_but_last_seq(status: str, source: str):
    """The consumer acknowledges them without applying (``consumer._changes_nothing``)."""
    start = record(status=status, job_name="j", exit_code=1, last_seq=1)
    for candidate in (
        event(2, "accepted", source=source),
        event(2, "accepted", source=source, job_name="other"),
        event(2, "queued", source=source),
    ):
        changes = statuses.transition(start, candidate)
        if consumer._changes_nothing(candidate):
            assert changes == {"last_seq": 2}
        else:
            assert candidate.type != events.EventType.ACCEPTED or candidate.job_name is not None


def _as_published(candidate: events.Event, seq: int = 7) -> bytes:
    """The global stream's copy of ``candidate`` as ``publish.lua`` writes it."""
    slim = candidate.slim_json()
    assert slim is not None
    return ('{"v":1,"seq":' + str(seq) + "," + slim[1:]).encode()


@pytest.mark.parametrize(
    "candidate",
    [
        events.Event(eval_id="t1/a-1", type="accepted", source="dispatcher"),
        events.Event(eval_id="a-1", type="accepted", source="sidecar", ts=1.5e9),
        events.Event(eval_id="t1/a-1", type="accepted", source="dispatcher", job_name="j"),
        events.Event(eval_id="t1/a-1", type="queued", source="dispatcher", position=3),
        events.Event(eval_id="t1/a-1", type="running", source="sidecar"),
        events.Event(eval_id="t1/a-1", type="completed", source="sidecar", exit_code=0),
        events.Event(eval_id="t1/a-1", type="failed", source="sidecar", reason='"type":"accepted"'),
    ],
)
def test_the_consumers_raw_check_skips_only_what_changes_nothing(candidate: events.Event):
    """``_IDLE_ACCEPTED`` skips an entry unparsed: only where the parsed event would be too."""
    raw = _as_published(candidate)
    assert events.parse(raw).type == candidate.type
    skipped_raw = consumer._IDLE_ACCEPTED.match(raw) is not None
    assert skipped_raw == consumer._changes_nothing(events.parse(raw))


def test_the_consumers_raw_check_does_not_match_a_field_that_looks_like_one():
    """A terminal event whose text holds the pattern is parsed, whatever its fields say."""
    forged = b'{"v":1,"seq":3,"eval_id":"a","type":"failed","reason":"x","type":"accepted"}'
    assert consumer._IDLE_ACCEPTED.match(forged) is None
