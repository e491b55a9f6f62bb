"""Pure builders: the wrapper's channel records and output bytes in, events and dedup tokens out.

Dedup tokens name content, not attempts: a retried batch passes the same tokens and the
dispatcher's publish script returns the first copy of each. An output chunk is named by stream,
byte offset AND byte length; the same (stream, offset, length) is always the same bytes of the
append-only spool.
"""

import codecs
import math
from typing import Any, Literal

import pydantic

from wire import events

Stream = Literal["stdout", "stderr"]
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")

RUNNING_TOKEN = "running"
TERMINAL_TOKEN = "terminal"


def output_token(stream: Stream, offset: int, length: int) -> str:
    return f"output:{stream}:{offset}:{length}"


def decode_chunk(raw: bytes, *, final: bool) -> tuple[str, int]:
    """Decode the start of ``raw`` as UTF-8 (replacing bad bytes) and say how many bytes it used.

    Unless ``final``, an incomplete character at the end is held back (the incremental decoder
    keeps it) so that a character split across writes or chunks is never mangled; the caller
    starts the next chunk at ``offset + used``.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(raw, final=final)
    held_back = len(decoder.getstate()[0])
    return text, len(raw) - held_back


def running_event(eval_id: str, started: dict[str, Any]) -> events.Event:
    started_at = started.get("started_at")
    if isinstance(started_at, bool) or not (
        isinstance(started_at, int | float) and math.isfinite(started_at)
    ):
        started_at = None  # a value that breaks the contract is left out, not passed on
    return events.Event(
        eval_id=eval_id, type=events.EventType.RUNNING, source="sidecar", started_at=started_at
    )


def output_event(eval_id: str, stream: Stream, offset: int, data: str) -> events.Event:
    return events.Event(
        eval_id=eval_id,
        type=events.EventType.OUTPUT,
        source="sidecar",
        stream=stream,
        offset=offset,
        data=data,
    )


class ExitRecord(pydantic.BaseModel):
    """The EXIT frame's record (``wire.channel.exit_record``). The wrapper is trusted, but a
    record that breaks the contract becomes an ``error`` verdict rather than a crash."""

    model_config = pydantic.ConfigDict(extra="ignore")

    exit_code: int
    signal: int | None = None
    timed_out: bool = False
    duration_seconds: float = pydantic.Field(default=0.0, ge=0, allow_inf_nan=False)
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wrapper_error: str | None = None
    # The wrapper's --timeout, for a precise "timeout after Ns".
    timeout_seconds: float | None = pydantic.Field(default=None, ge=0, allow_inf_nan=False)


def terminal_type(record: ExitRecord) -> events.EventType:
    if record.wrapper_error:
        return events.EventType.ERROR
    if record.timed_out:
        return events.EventType.TIMEOUT
    return events.EventType.COMPLETED if record.exit_code == 0 else events.EventType.FAILED


def terminal_reason(record: ExitRecord) -> str | None:
    if record.wrapper_error:
        return record.wrapper_error
    if record.timed_out:
        limit = (
            record.duration_seconds if record.timeout_seconds is None else record.timeout_seconds
        )
        return f"timeout after {round(limit, 1):g}s"
    return None


def terminal_event(
    eval_id: str, raw_record: dict[str, Any], *, output: str, error: str, truncated: bool = False
) -> events.Event:
    """The sidecar's verdict from the EXIT record; unverified until the dispatcher checks it.
    ``truncated``: the sidecar itself cut a stream at its cap (whatever the record says)."""
    try:
        record = ExitRecord.model_validate(raw_record)
    except pydantic.ValidationError as e:
        return events.Event(
            eval_id=eval_id,
            type=events.EventType.ERROR,
            source="sidecar",
            reason=f"unreadable exit record: {e.error_count()} invalid field(s)",
            output=events.tail(output),
            error=events.tail(error),
            truncated=truncated,
            verified=False,
        )
    return events.Event(
        eval_id=eval_id,
        type=terminal_type(record),
        source="sidecar",
        reason=terminal_reason(record),
        exit_code=record.exit_code,
        signal=record.signal,
        duration_seconds=record.duration_seconds,
        output=events.tail(output),
        error=events.tail(error),
        truncated=record.stdout_truncated or record.stderr_truncated or truncated,
        verified=False,
    )
