"""The evaluation record: what ``GET /v1/evaluations/{id}`` returns and the status store keeps.

Owner of the record's shape; ``store`` persists it, and ``wire/apply_event.lua`` (the status
rules) decides how an event changes it.
"""

import enum
from typing import Any

import pydantic

from wire import events


class Status(enum.StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    ERROR = "error"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.CANCELLED, Status.ERROR}
)
assert {s.value for s in TERMINAL_STATUSES} == {t.value for t in events.TERMINAL_TYPES}


class Resources(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    cpu: str
    memory: str


class Record(pydantic.BaseModel):
    """One evaluation as the status store knows it."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    eval_id: str
    status: Status
    backend: str
    image: str
    command: list[str]
    timeout_seconds: float
    resources: Resources
    labels: dict[str, str] = {}
    created_at: float
    job_name: str | None = None
    scheduled_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    output: str | None = None
    error: str | None = None
    truncated: bool | None = None
    # True once the reconciler (kubelet's record) or the local backend (the process's real wait
    # status) has confirmed the verdict.
    verified: bool = False
    # What the verification changed, e.g. "exit_code 0 -> 137, reason OOMKilled"; None if nothing.
    correction: str | None = None
    # sha256 of the normalised request body: same eval_id + same digest = idempotent retry.
    request_digest: str
    last_seq: int = 0

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"request_digest", "last_seq"})
