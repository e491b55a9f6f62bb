"""The event schema: one owner for what every producer publishes and every consumer reads.

Producers are the sidecar (``running``, ``output``, the first terminal verdict) and the
dispatcher (``accepted``, ``queued``, ``scheduled``, ``pending``, verified verdicts, cancels,
errors).
``v`` and ``seq`` are not set here: the publish script stamps them inside Redis, so ``seq``
increases per evaluation across both producers and is never reused (see ``wire.keys``).
"""

import enum
import json
import time
from typing import Any, Literal

import pydantic

from wire import event_dicts, keys, tenancy

SCHEMA_VERSION = event_dicts.SCHEMA_VERSION


class EventType(enum.StrEnum):
    # The values are spelled once, in ``event_dicts`` (the sidecar's standard-library side).
    ACCEPTED = event_dicts.ACCEPTED
    QUEUED = event_dicts.QUEUED
    SCHEDULED = event_dicts.SCHEDULED
    PENDING = event_dicts.PENDING
    RUNNING = event_dicts.RUNNING
    OUTPUT = event_dicts.OUTPUT
    COMPLETED = event_dicts.COMPLETED
    FAILED = event_dicts.FAILED
    TIMEOUT = event_dicts.TIMEOUT
    CANCELLED = event_dicts.CANCELLED
    ERROR = event_dicts.ERROR


TERMINAL_TYPES = frozenset(EventType(t) for t in event_dicts.TERMINAL_TYPES)

# The original design's channels; a consumer written against it hears of every end.
LEGACY_CHANNELS: dict[EventType, str] = {
    EventType.RUNNING: keys.LEGACY_RUNNING,
    EventType.COMPLETED: keys.LEGACY_COMPLETED,
    EventType.FAILED: keys.LEGACY_FAILED,
    EventType.TIMEOUT: keys.LEGACY_FAILED,
    EventType.CANCELLED: keys.LEGACY_FAILED,
    EventType.ERROR: keys.LEGACY_FAILED,
}

# The tail and reason rules are the standard-library side's, so both sides cut alike.
TAIL_LIMIT_CHARS = event_dicts.TAIL_LIMIT_CHARS
TAIL_READ_BYTES = event_dicts.TAIL_READ_BYTES
tail = event_dicts.tail
tail_of_bytes = event_dicts.tail_of_bytes

Source = Literal["sidecar", "dispatcher"]


class Event(pydantic.BaseModel):
    """One event as published. Fields that do not apply to a type are left out of the JSON."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    v: int = SCHEMA_VERSION
    seq: int = 0
    eval_id: str
    type: EventType
    ts: float = pydantic.Field(default_factory=time.time)
    source: Source
    # accepted / scheduled
    job_name: str | None = None
    # queued: 1 for the next to start, counted in the order the admission queue serves
    # tenants (round robin), when the event was published
    position: int | None = pydantic.Field(default=None, ge=1)
    # pending / timeout / cancelled / error, and failed when the kubelet gives one (OOMKilled)
    reason: str | None = None
    # running
    started_at: float | None = None
    # output
    stream: Literal["stdout", "stderr"] | None = None
    offset: int | None = None
    data: str | None = None
    # terminal
    exit_code: int | None = None
    signal: int | None = None
    duration_seconds: float | None = None
    output: str | None = None
    error: str | None = None
    truncated: bool | None = None
    verified: bool | None = None

    @pydantic.field_validator("reason")
    @classmethod
    def _short_reason(cls, value: str | None) -> str | None:
        return None if value is None else event_dicts.short_reason(value)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_TYPES

    def body_json(self) -> str:
        """The JSON published, less ``v`` and ``seq``, which the publish script prepends."""
        return self.model_dump_json(exclude_none=True, exclude={"v", "seq"})

    def slim_json(self) -> str | None:
        """The global stream's copy (status only: no output, no tails), None for output."""
        if self.type == EventType.OUTPUT:
            return None
        return self.model_dump_json(exclude_none=True, exclude={"v", "seq", "output", "error"})

    def verdict(self) -> str:
        """``type:exit_code``: what legacy consumers were told, compared for corrections."""
        return event_dicts.verdict_of(self.type.value, self.exit_code)

    def legacy_payload(self) -> str | None:
        """The payload for ``evaluation:*`` channels, or None for types they do not carry."""
        if self.type not in LEGACY_CHANNELS:
            return None
        tenant, eval_id = tenancy.split(self.eval_id)
        payload: dict[str, Any] = {
            "eval_id": eval_id,
            "tenant": tenant or None,
            "exit_code": self.exit_code,
            "output": self.output or "",
            "error": self.error or "",
            "duration_seconds": self.duration_seconds,
            "timestamp": self.ts,
        }
        if self.type in (EventType.TIMEOUT, EventType.CANCELLED, EventType.ERROR):
            payload["status"] = self.type.value
            payload["reason"] = self.reason
        if self.verified:
            payload["verified"] = True
        return json.dumps(payload, separators=(",", ":"))


def parse(raw: str | bytes) -> Event:
    """Read one published event (as stored in a stream entry's ``event`` field)."""
    return Event.model_validate_json(raw)
