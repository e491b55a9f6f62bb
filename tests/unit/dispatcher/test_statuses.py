"""The pure status rules (the Lua script is checked against them on a real Redis)."""

from typing import Any

from dispatcher import statuses
from sidecar import events


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
