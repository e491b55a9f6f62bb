"""Pure builders: the wrapper's channel records and output bytes in, events and dedup tokens out.

Events are plain dicts (``wire.event_dicts``, checked against ``wire.events.Event`` by the wire
tests): the sidecar never loads pydantic. Dedup tokens name content, not attempts: a retried
batch passes the same tokens and the dispatcher's publish script returns the first copy of each.
An output chunk is named by stream, byte offset AND byte length; the same (stream, offset,
length) is always the same bytes of the append-only spool.
"""

import codecs
import dataclasses
from typing import Any, Literal

from wire import event_dicts

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


def running_event(eval_id: str, started: dict[str, Any]) -> event_dicts.EventDict:
    started_at = started.get("started_at")
    if not event_dicts.is_number(started_at):
        started_at = None  # a value that breaks the contract is left out, not passed on
    return event_dicts.make(eval_id, event_dicts.RUNNING, "sidecar", started_at=started_at)


def output_event(eval_id: str, stream: Stream, offset: int, data: str) -> event_dicts.EventDict:
    return event_dicts.make(
        eval_id, event_dicts.OUTPUT, "sidecar", stream=stream, offset=offset, data=data
    )


@dataclasses.dataclass(frozen=True)
class ExitRecord:
    """The EXIT frame's record (``wire.channel.exit_record``), checked by ``parse_exit_record``.
    The wrapper is trusted, but a record that breaks the contract becomes an ``error`` verdict
    rather than a crash."""

    exit_code: int
    signal: int | None = None
    timed_out: bool = False
    duration_seconds: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wrapper_error: str | None = None
    # The wrapper's --timeout, for a precise "timeout after Ns".
    timeout_seconds: float | None = None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration(value: Any) -> bool:
    return event_dicts.is_number(value) and value >= 0


# What each field of the record must be (as JSON gives it: no coercion); None where allowed.
_EXIT_FIELDS: dict[str, tuple[Any, bool]] = {  # name: (check, may be None)
    "exit_code": (_integer, False),
    "signal": (_integer, True),
    "timed_out": (lambda v: isinstance(v, bool), False),
    "duration_seconds": (_duration, False),
    "stdout_truncated": (lambda v: isinstance(v, bool), False),
    "stderr_truncated": (lambda v: isinstance(v, bool), False),
    "wrapper_error": (lambda v: isinstance(v, str), True),
    "timeout_seconds": (_duration, True),
}


class InvalidExitRecordError(ValueError):
    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"invalid field(s): {', '.join(fields)}")
        self.fields = fields


def parse_exit_record(raw: dict[str, Any]) -> ExitRecord:
    """The record's fields, checked; unknown keys (``finished_at``, ...) are ignored.
    ``InvalidExitRecordError`` names every field that is missing or breaks the contract."""
    values: dict[str, Any] = {}
    invalid: list[str] = []
    for name, (check, nullable) in _EXIT_FIELDS.items():
        if name not in raw:
            if name == "exit_code":
                invalid.append(name)
            continue
        value = raw[name]
        if value is not None and check(value):
            values[name] = float(value) if check is _duration else value
        elif value is None and nullable:
            values[name] = None
        else:
            invalid.append(name)
    if invalid:
        raise InvalidExitRecordError(invalid)
    return ExitRecord(**values)


def terminal_type(record: ExitRecord) -> str:
    if record.wrapper_error:
        return event_dicts.ERROR
    if record.timed_out:
        return event_dicts.TIMEOUT
    return event_dicts.COMPLETED if record.exit_code == 0 else event_dicts.FAILED


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
) -> event_dicts.EventDict:
    """The sidecar's verdict from the EXIT record; unverified until the dispatcher checks it.
    ``truncated``: the sidecar itself cut a stream at its cap (whatever the record says)."""
    output, error = event_dicts.tail(output), event_dicts.tail(error)
    try:
        record = parse_exit_record(raw_record)
    except InvalidExitRecordError as e:
        return event_dicts.make(
            eval_id,
            event_dicts.ERROR,
            "sidecar",
            reason=f"unreadable exit record: {len(e.fields)} invalid field(s)",
            output=output,
            error=error,
            truncated=truncated,
            verified=False,
        )
    return event_dicts.make(
        eval_id,
        terminal_type(record),
        "sidecar",
        reason=terminal_reason(record),
        exit_code=record.exit_code,
        signal=record.signal,
        duration_seconds=record.duration_seconds,
        output=output,
        error=error,
        truncated=record.stdout_truncated or record.stderr_truncated or truncated,
        verified=False,
    )
