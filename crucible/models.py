"""What the API answers, as frozen dataclasses.

Fields the client does not know (a newer dispatcher's) land in ``extra`` instead of failing,
and fields a shape leaves out (a listing's summaries) take their defaults, so an old client
keeps working against a new server. Statuses and event types stay plain strings for the same
reason; the known ones are the constants below.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

from crucible import errors

TERMINAL = frozenset({"completed", "failed", "timeout", "cancelled", "error"})
_PROGRESS = ("accepted", "queued", "scheduled", "pending", "running")
STATUSES = frozenset({*_PROGRESS, *TERMINAL})
EVENT_TYPES = frozenset({*_PROGRESS, "output", *TERMINAL})
# How an operator names a tenant's evaluation: TENANT~ID.
TENANT_SEPARATOR = "~"
_T = TypeVar("_T")


def _build(cls: type[_T], body: object, **local: Any) -> _T:
    """``cls`` from a JSON object: known fields as given, the rest in ``extra``; ``local``
    (what the client knows from elsewhere) wins over the body."""
    if not isinstance(body, Mapping):
        raise errors.ProtocolError(f"expected a JSON object for {cls.__name__}")
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}  # type: ignore[arg-type]
    known = {k: v for k, v in body.items() if k in names} | local
    extra = {k: v for k, v in body.items() if k not in names}
    make: Callable[..., _T] = cls
    try:
        return make(**known, extra=extra)
    except TypeError as e:  # a required field is missing
        raise errors.ProtocolError(f"unexpected {cls.__name__}: {e}") from None


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """An evaluation's record (``Record`` in the OpenAPI document)."""

    eval_id: str
    """The id as its tenant names it (without the tenant)."""
    status: str
    tenant: str | None = None
    """The owning tenant; None for an evaluation an operator submitted for itself."""
    backend: str | None = None
    image: str | None = None
    command: tuple[str, ...] = ()
    timeout_seconds: float | None = None
    resources: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    created_at: float | None = None
    job_name: str | None = None
    queue_position: int | None = None
    """While ``queued``: 1 for the next to start."""
    scheduled_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    output: str | None = None
    """The tail of stdout (the whole of it: ``output()``)."""
    error: str | None = None
    """The tail of stderr."""
    truncated: bool | None = None
    verified: bool = False
    """The verdict is confirmed (the kubelet's record, or the process's own wait status)."""
    correction: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, body: object) -> Self:
        evaluation = _build(cls, body)
        # JSON has lists only; a tuple keeps the frozen record's command immutable.
        return dataclasses.replace(evaluation, command=tuple(evaluation.command))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def finished(self) -> bool:
        """Ended, and the end verified: nothing about the record changes any more."""
        return self.terminal and self.verified

    @property
    def qualified_id(self) -> str:
        """The id an operator's token names this evaluation by (``TENANT~ID``); a tenant's
        token names it by ``eval_id``."""
        return f"{self.tenant}{TENANT_SEPARATOR}{self.eval_id}" if self.tenant else self.eval_id


@dataclasses.dataclass(frozen=True)
class Event:
    """One event of an evaluation's stream (fields that do not apply to a type are None)."""

    type: str
    eval_id: str
    id: str | None = None
    """The SSE id (a stream entry id): pass as ``last_event_id`` to resume after it."""
    tenant: str | None = None
    v: int | None = None
    seq: int | None = None
    ts: float | None = None
    source: str | None = None
    job_name: str | None = None
    position: int | None = None
    """``queued`` events: the queue position (1 = next to start)."""
    reason: str | None = None
    started_at: float | None = None
    stream: str | None = None
    """``output`` events: ``stdout`` or ``stderr``; ``data`` is the text at byte ``offset``."""
    offset: int | None = None
    data: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    duration_seconds: float | None = None
    output: str | None = None
    error: str | None = None
    truncated: bool | None = None
    verified: bool | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, body: object, *, id: str | None = None) -> Self:
        return _build(cls, body, id=id)

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL

    @property
    def final(self) -> bool:
        """The verified end: the last event the stream sends."""
        return self.terminal and self.verified is True


@dataclasses.dataclass(frozen=True)
class Output:
    """The full captured output (``GET …/output``)."""

    stdout: str
    stderr: str
    truncated: bool
    """Some output is missing: capped by the wrapper, or trimmed from the stream."""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, body: object) -> Self:
        return _build(cls, body)
