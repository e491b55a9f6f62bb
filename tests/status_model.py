"""The status rules as pure Python: a differential model of ``wire/apply_event.lua``.

The Lua script is the one implementation (it runs inside Redis, so concurrent dispatchers
cannot interleave); this model is only the oracle it is tested against with randomised event
orders (tests/integration/store/test_status_script.py). Change both together.

The rules:
- an event whose ``seq`` is not above the record's ``last_seq`` is a replay: ignored;
- progress (accepted < queued < scheduled < pending < running) never goes back, and never
  overwrites a terminal status; ``job_name``, ``scheduled_at`` and ``started_at`` are recorded
  even when the status does not move (the backend's ``scheduled`` can arrive after the sidecar's
  ``running``);
  after an end, a ``running`` event only fills in a missing ``started_at`` (from its own
  ``started_at``: the time such a late event was sent is no start time); a ``queued`` event
  sets ``queue_position``, which goes when the status leaves ``queued``;
- the first terminal event sets the status and the verdict fields (exit_code, signal,
  duration_seconds, output, error, truncated, reason) exactly as it gives them;
- a later terminal event that is ``verified`` and from the dispatcher confirms it once: sets
  ``verified``; where exit_code or reason differ it corrects them and writes ``correction``;
  between ``completed`` and ``failed`` the status follows it (an OOM kill after the sidecar
  said ``completed``), and a first ``completed`` (a claim of success) yields to whatever it
  says; any other status stays (``cancelled`` stays cancelled, and only gains
  an exit code or signal it did not have);
- any later terminal event (the sidecar's, when the reconciler's verified verdict came first, as
  it always does with a plain sidecar on Kubernetes) fills in what the record still lacks:
  ``output``, ``error`` (missing or empty), ``truncated``, ``started_at``, ``duration_seconds``
  (missing), and ``signal`` where it is missing and the event's exit code is the record's. It
  never changes status, exit_code, reason, verified or correction: the first verdict, and the
  verified one, stay authoritative.
"""

from collections.abc import Mapping
from typing import Any

from dispatcher.store.records import Status
from wire.events import Event, EventType

PROGRESS_RANK = {
    Status.ACCEPTED: 0,
    Status.QUEUED: 1,
    Status.SCHEDULED: 2,
    Status.PENDING: 3,
    Status.RUNNING: 4,
}
VERDICT_FIELDS = (
    "exit_code",
    "signal",
    "duration_seconds",
    "output",
    "error",
    "truncated",
    "reason",
)
CORRECTED_FIELDS = ("exit_code", "reason")
FILLED_FIELDS = ("output", "error", "truncated", "started_at", "duration_seconds")
_EMPTY_WHEN_BLANK = ("output", "error")
_EXIT_STATUSES = (Status.COMPLETED, Status.FAILED)

Changes = dict[str, Any]
"""Fields to set; a value of None removes the field."""


def transition(record: Mapping[str, Any], event: Event) -> Changes | None:
    """The changes ``event`` makes to ``record`` (decoded field values), or None if none."""
    if event.seq <= int(record.get("last_seq") or 0):
        return None
    changes: Changes = {"last_seq": event.seq}
    status = Status(record["status"])
    if event.type == EventType.OUTPUT:
        return changes
    if not event.terminal:
        if not status.terminal:
            changes.update(_progress(status, event))
        elif (
            event.type == EventType.RUNNING
            and event.started_at is not None
            and _lacks(record, "started_at")
        ):
            changes["started_at"] = event.started_at
    elif not status.terminal:
        changes.update(_first_verdict(event))
    else:
        if confirms(record, event):
            changes.update(_confirmation(record, status, event))
        changes.update(_fill_in(record, event, changes))
    if status is Status.QUEUED and changes.get("status", status) is not status:
        changes["queue_position"] = None  # only a queued evaluation has a position
    return changes


def confirms(record: Mapping[str, Any], event: Event) -> bool:
    return event.verified is True and event.source == "dispatcher" and not record.get("verified")


def _progress(status: Status, event: Event) -> Changes:
    new = Status(event.type.value)
    changes: Changes = {}
    if event.job_name is not None:
        changes["job_name"] = event.job_name
    if new is Status.SCHEDULED:
        changes["scheduled_at"] = event.ts
    if new is Status.RUNNING:
        changes["started_at"] = event.started_at if event.started_at is not None else event.ts
    if PROGRESS_RANK[new] >= PROGRESS_RANK[status]:
        if new is not status:
            changes["status"] = new
        if new is Status.PENDING and event.reason is not None:
            changes["reason"] = event.reason
        if new is Status.QUEUED and event.position is not None:
            changes["queue_position"] = event.position
        if new is Status.RUNNING:
            changes["reason"] = None
    return changes


def _first_verdict(event: Event) -> Changes:
    changes: Changes = {name: getattr(event, name) for name in VERDICT_FIELDS}
    changes["status"] = Status(event.type.value)
    changes["finished_at"] = event.ts
    changes["verified"] = event.verified is True and event.source == "dispatcher"
    return changes


def _confirmation(record: Mapping[str, Any], status: Status, event: Event) -> Changes:
    changes: Changes = {"verified": True}
    if status is Status.CANCELLED:
        for name in ("exit_code", "signal"):
            if getattr(event, name) is not None and record.get(name) is None:
                changes[name] = getattr(event, name)
        return changes
    notes: list[str] = []
    new = Status(event.type.value)
    overrides = status is Status.COMPLETED or (status in _EXIT_STATUSES and new in _EXIT_STATUSES)
    if overrides and new is not status:
        changes["status"] = new
        notes.append(f"status {status.value} -> {new.value}")
    for name in CORRECTED_FIELDS:
        value = getattr(event, name)
        if value is not None and value != record.get(name):
            notes.append(f"{name} {_shown(record.get(name))} -> {_shown(value)}")
            changes[name] = value
    if "exit_code" in changes:
        changes["signal"] = event.signal
    if notes:
        changes["correction"] = ", ".join(notes)
    return changes


def _fill_in(record: Mapping[str, Any], event: Event, changes: Changes) -> Changes:
    """What a later terminal event adds to an ended record: only fields it still lacks, and
    none that ``changes`` (a confirmation by the same event) already decided."""
    filled: Changes = {}
    for name in FILLED_FIELDS:
        value = getattr(event, name)
        if value is not None and name not in changes and _lacks(record, name):
            filled[name] = value
    if (
        event.signal is not None
        and "signal" not in changes
        and record.get("signal") is None
        and event.exit_code == record.get("exit_code")
    ):
        filled["signal"] = event.signal
    return filled


def _lacks(record: Mapping[str, Any], name: str) -> bool:
    value = record.get(name)
    return value is None or (name in _EMPTY_WHEN_BLANK and value == "")


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def applied(record: Mapping[str, Any], changes: Changes) -> dict[str, Any]:
    """``record`` with ``changes`` made (for tests and for reasoning about a sequence)."""
    result = {k: v for k, v in record.items()}
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value.value if isinstance(value, Status) else value
    return result
