"""Where and how an evaluation's record lives in Redis: the keys and arguments of the store's
scripts, and the encoding of record fields (JSON texts), events, summaries and cursors.
Owned here so the store, the tests and the rebuild read one spelling."""

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable
from typing import Any

import pydantic

from dispatcher import errors
from dispatcher.store.records import SUMMARY_FIELDS, Record, Status, Summary
from wire import events, keys, tenancy

INDEX = keys.INDEX
record_key = keys.record_key
# json.dumps with separators builds an encoder per call; a record has a dozen fields.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def status_index(status: Status) -> str:
    return keys.status_index(status.value)


# The statuses an evaluation holds its tenant's capacity in (create_record.lua's KEYS 7..11).
_NOT_ENDED = tuple(s for s in Status if not s.terminal)
# Same order as STATUSES in apply_event.lua.
STATUSES = list(Status)
STATUS_INDEXES = [status_index(s) for s in STATUSES]


def tenant_indexes(tenant: str) -> list[str]:
    """The tenant's index of all its evaluations, then one per status (STATUS_INDEXES' order)."""
    return [keys.tenant_index(tenant), *(keys.tenant_status_index(tenant, s) for s in STATUSES)]


def create_keys(record: Record) -> list[str]:
    """KEYS of create_record.lua."""
    tenant, _ = tenancy.split(record.eval_id)
    return [
        record_key(record.eval_id),
        INDEX,
        status_index(record.status),
        keys.tenant_index(tenant),
        keys.tenant_status_index(tenant, record.status.value),
        keys.TENANTS,
        *(keys.tenant_status_index(tenant, s) for s in _NOT_ENDED),
        keys.tenant_bucket(tenant),
    ]


def indexes_of(tenant: str) -> list[str]:
    return [INDEX, *STATUS_INDEXES, *tenant_indexes(tenant)]


def status_keys(eval_id: str) -> list[str]:
    """KEYS of apply_event.lua: the record, the status indexes, its tenant's status indexes,
    the admitted sets an end leaves."""
    tenant, _ = tenancy.split(eval_id)
    return [
        record_key(eval_id),
        *STATUS_INDEXES,
        *tenant_indexes(tenant)[1:],
        keys.ADMITTED,
        keys.tenant_admitted(tenant),
    ]


def encode_record(record: Record) -> dict[str, str]:
    return {
        name: _compact(value)
        for name, value in record.model_dump(mode="json").items()
        if value is not None
    }


def packed_fields(record: Record) -> str:
    """``encode_record`` as create_record.lua's one argument: name NUL value NUL ... (JSON
    escapes every control character, so no value holds a raw NUL)."""
    return "".join(f"{name}\0{value}\0" for name, value in encode_record(record).items())


def decode_fields(raw: dict[bytes, bytes]) -> dict[str, Any]:
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def event_args(event: events.Event) -> list[str | int]:
    """ARGV of ``apply_event.lua`` for one event."""
    fields = event.model_dump(
        mode="json",
        exclude_none=True,
        exclude={"v", "seq", "eval_id", "type", "ts", "source", "verified", "stream", "data"},
    )
    args: list[str | int] = [
        event.seq,
        event.type.value,
        event.source,
        "1" if event.verified is True else "0",
        json.dumps(event.ts),
    ]
    for name, value in fields.items():
        args += [name, _compact(value)]
    return args


@dataclasses.dataclass(frozen=True)
class QueueEntry:
    """A backend's note that it holds a submission: ``HSET key field value``."""

    key: str
    field: str
    value: str


def decode_summary(values: list[bytes | None]) -> Summary | None:
    raw = {name: value for name, value in zip(SUMMARY_FIELDS, values, strict=True) if value}
    if not raw:
        return None
    try:
        return Summary.model_validate({k: json.loads(v) for k, v in raw.items()})
    except (pydantic.ValidationError, ValueError):
        return None  # as ``_record``: a junk hash counts as absent


def decode_record(raw: dict[bytes, bytes]) -> Record | None:
    if not raw:
        return None
    try:
        return Record.model_validate(decode_fields(raw))
    except (pydantic.ValidationError, ValueError):
        # A half-written hash cannot exist (scripts write whole records); treat junk as absent.
        return None


def status_events(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> Iterable[events.Event]:
    for _, fields in entries:
        raw = fields.get(keys.EVENT_FIELD.encode(), b"")
        if b'"type":"output"' in raw:
            continue
        try:
            yield events.parse(raw)
        except pydantic.ValidationError:
            continue


def encode_cursor(eval_id: str, score: float) -> str:
    return base64.urlsafe_b64encode(f"{score!r} {eval_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, eval_id = text.split(" ", 1)
        return float(score), eval_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidRequestError(
            "invalid cursor",
            details=[{"field": "cursor", "message": "not a cursor from a listing"}],
        ) from None
