"""The evaluation record: what ``GET /v1/evaluations/{id}`` returns and the status store keeps.

Owner of the record's shape; ``store`` persists it, and ``wire/apply_event.lua`` (the status
rules) decides how an event changes it.
"""

import enum
from typing import Any

import pydantic

from wire import events, tenancy


class Status(enum.StrEnum):
    ACCEPTED = "accepted"
    QUEUED = "queued"
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


class Summary(pydantic.BaseModel):
    """A record as a listing shows it: no command, output or error text, so a page of them is
    small whatever the evaluations printed (``GET`` of one evaluation has the rest)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    eval_id: str
    status: Status
    backend: str
    image: str
    labels: dict[str, str] = {}
    created_at: float
    job_name: str | None = None
    # While queued: the position the last ``queued`` event gave (1 = next to start).
    queue_position: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    truncated: bool | None = None
    # True once the reconciler (kubelet's record) or the local backend (the process's real wait
    # status) has confirmed the verdict.
    verified: bool = False
    # What the verification changed, e.g. "exit_code 0 -> 137, reason OOMKilled"; None if nothing.
    correction: str | None = None

    def public(self) -> dict[str, Any]:
        """As the API shows it: the caller's id with the tenant beside it."""
        return tenancy.present(self.model_dump(mode="json", exclude=_PRIVATE))


class Record(Summary):
    """One evaluation as the status store knows it: the summary, and the rest."""

    command: list[str]
    timeout_seconds: float
    resources: Resources
    scheduled_at: float | None = None
    output: str | None = None
    error: str | None = None
    # sha256 of the normalised request body: same eval_id + same digest = idempotent retry.
    request_digest: str
    last_seq: int = 0


_PRIVATE = {"request_digest", "last_seq"}


# The record fields a listing reads from Redis (HMGET), nothing more.
SUMMARY_FIELDS = tuple(Summary.model_fields)
assert not _PRIVATE & set(SUMMARY_FIELDS)
