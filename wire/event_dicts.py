"""Events as plain JSON-ready dicts, for a producer that must stay small: the sidecar.

``wire.events.Event`` (pydantic) stays the one owner of the schema; this module builds the
same JSON with the standard library only, so the sidecar never loads pydantic (about 12 MB of
RSS per pod). ``tests/unit/wire/test_event_dicts.py`` ties the two: the names, types and rules
below must match ``Event``, and every dict the sidecar can produce validates against ``Event``
and comes back from it unchanged. The dispatcher validates every event it ingests with
``Event`` anyway (``wire.ingest.Batch``).

A dict holds what ``Event.body_json()`` publishes, in the same order: no ``v`` and ``seq`` (the
publish script stamps them), and no field that is None.
"""

import json
import math
import time
from typing import Any

from wire import limits

EventDict = dict[str, Any]

SCHEMA_VERSION = 1

# The values of ``wire.events.EventType``.
ACCEPTED = "accepted"
QUEUED = "queued"
SCHEDULED = "scheduled"
PENDING = "pending"
RUNNING = "running"
OUTPUT = "output"
COMPLETED = "completed"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
ERROR = "error"
TYPES = frozenset(
    {
        ACCEPTED,
        QUEUED,
        SCHEDULED,
        PENDING,
        RUNNING,
        OUTPUT,
        COMPLETED,
        FAILED,
        TIMEOUT,
        CANCELLED,
        ERROR,
    }
)
TERMINAL_TYPES = frozenset({COMPLETED, FAILED, TIMEOUT, CANCELLED, ERROR})

SOURCES = frozenset({"sidecar", "dispatcher"})
STREAMS = frozenset({"stdout", "stderr"})

# ``Event``'s fields after eval_id, type, ts and source, in its order, with the JSON type each
# takes (a float field takes an int too; a bool is never a number).
OPTIONAL_FIELDS: dict[str, type] = {
    "job_name": str,
    "position": int,
    "reason": str,
    "started_at": float,
    "stream": str,
    "offset": int,
    "data": str,
    "exit_code": int,
    "signal": int,
    "duration_seconds": float,
    "output": str,
    "error": str,
    "truncated": bool,
    "verified": bool,
}

TAIL_LIMIT_CHARS = limits.TAIL_LIMIT_CHARS
# UTF-8 needs at most 4 bytes per character: this many bytes always hold a tail's characters.
TAIL_READ_BYTES = 4 * TAIL_LIMIT_CHARS


def make(
    eval_id: str, event_type: str, source: str, *, ts: float | None = None, **fields: Any
) -> EventDict:
    """One event; ``ts`` is now unless given, None fields are left out, a long reason is cut
    (as ``Event`` cuts it). Raises ValueError for anything ``Event`` would refuse."""
    if event_type not in TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    _check("eval_id", eval_id, str)
    event: EventDict = {"eval_id": eval_id, "type": event_type}
    event["ts"] = time.time() if ts is None else _check("ts", ts, float)
    event["source"] = source
    unknown = fields.keys() - OPTIONAL_FIELDS.keys()
    if unknown:
        raise ValueError(f"not an event field: {', '.join(sorted(unknown))}")
    for name, kind in OPTIONAL_FIELDS.items():
        value = fields.get(name)
        if value is not None:
            event[name] = _check(name, value, kind)
    if event.get("stream", "stdout") not in STREAMS:
        raise ValueError(f"unknown stream {event['stream']!r}")
    if "reason" in event:
        event["reason"] = short_reason(event["reason"])
    return event


def is_number(value: Any) -> bool:
    """A finite JSON number: an int or a float, never a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too big for a float
        return False


def _check(name: str, value: Any, kind: type) -> Any:
    if kind is float:
        if is_number(value):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, kind):
        return value
    raise ValueError(f"{name} must be a {'finite number' if kind is float else kind.__name__}")


def short_reason(reason: str) -> str:
    """Reasons come from kubelet messages and wrapper errors: cut, never refused."""
    if len(reason) <= limits.REASON_LIMIT_CHARS:
        return reason
    return reason[: limits.REASON_LIMIT_CHARS - 1] + "\u2026"


def is_terminal(event: EventDict) -> bool:
    return event["type"] in TERMINAL_TYPES


def verdict(event: EventDict) -> str:
    """``type:exit_code``, as ``Event.verdict()``."""
    return verdict_of(event["type"], event.get("exit_code"))


def verdict_of(event_type: str, exit_code: int | None) -> str:
    """What legacy consumers were told of an end, compared by ``publish.lua`` for corrections."""
    return f"{event_type}:{'' if exit_code is None else exit_code}"


def body_json(event: EventDict) -> str:
    """The JSON published (``Event.body_json()``): compact, UTF-8 text left as it is."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def tail(text: str, limit: int = TAIL_LIMIT_CHARS) -> str:
    return text if len(text) <= limit else text[-limit:]


def tail_of_bytes(raw: bytes) -> str:
    """The tail text of an output stream, given (at least) its last ``TAIL_READ_BYTES``."""
    start = 0
    # A read that starts inside a character would begin with replacement marks: skip into it.
    while start < min(3, len(raw)) and 0x80 <= raw[start] <= 0xBF:
        start += 1
    return tail(raw[start:].decode("utf-8", errors="replace"))
