"""Where and how an evaluation's record lives in Redis: the keys and arguments of the store's
scripts, and the encoding of record fields (JSON texts), events, summaries and cursors.
Owned here so the store, the tests and the rebuild read one spelling."""

import base64
import binascii
import dataclasses
import json
import math
from collections.abc import Iterable
from typing import Any

import pydantic

from dispatcher import errors
from dispatcher.store.records import SUMMARY_FIELDS, Record, Status, Summary
from wire import events, keys, tenancy

# json.dumps with separators builds an encoder per call; a record has a dozen fields.
_compact = json.JSONEncoder(separators=(",", ":")).encode
_string_text = json.encoder.encode_basestring_ascii  # what _compact does for a str


def field_text(value: Any) -> str:
    """``value`` as compact JSON text, the same as ``_compact(value)``: most of a record's
    fields are scalars, and those skip the encoder's set-up (a record's encoding took half
    of it)."""
    kind = type(value)
    if kind is str:
        return _string_text(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _compact(value)


# The statuses an evaluation holds its tenant's capacity in (create_record.lua's active group).
_NOT_ENDED = tuple(s for s in Status if not s.terminal)
# Same order as STATUSES in apply_event.lua.
STATUSES = list(Status)


def status_indexes(space: keys.Keyspace, partition: int) -> list[str]:
    return [space.status_index(partition, s.value) for s in STATUSES]


def tenant_indexes(space: keys.Keyspace, partition: int, tenant: str) -> list[str]:
    """The tenant's index of all its evaluations, then one per status (STATUSES' order)."""
    return [
        space.tenant_index(partition, tenant),
        *(space.tenant_status_index(partition, tenant, s.value) for s in STATUSES),
    ]


def create_keys(
    space: keys.Keyspace,
    record: Record,
    *,
    count_active: bool = False,
    bucket: bool = False,
    entry_key: str | None = None,
) -> list[str]:
    """KEYS of create_record.lua; the optional groups as its ARGV asks for them."""
    tenant, _ = tenancy.split(record.eval_id)
    at = space.partition(record.eval_id)
    status = record.status.value
    found = [
        space.record(record.eval_id),
        space.index(at),
        space.status_index(at, status),
        space.tenant_index(at, tenant),
        space.tenant_status_index(at, tenant, status),
        space.tenants(at),
    ]
    if count_active:
        found += [space.tenant_status_index(at, tenant, s.value) for s in _NOT_ENDED]
    if bucket:
        found.append(space.tenant_bucket(tenant))
    if entry_key is not None:
        found.append(entry_key)
    return found


def indexes_of(space: keys.Keyspace, eval_id: str) -> list[str]:
    """Every index an evaluation may be listed in."""
    at = space.partition(eval_id)
    tenant, _ = tenancy.split(eval_id)
    return [space.index(at), *status_indexes(space, at), *tenant_indexes(space, at, tenant)]


def status_keys(space: keys.Keyspace, eval_id: str) -> list[str]:
    """KEYS of apply_event.lua: the record, the status indexes, its tenant's status indexes,
    the admitted sets an end leaves (not on a Redis Cluster: another slot; ``ended_keys``)."""
    tenant, _ = tenancy.split(eval_id)
    at = space.partition(eval_id)
    found = [
        space.record(eval_id),
        *status_indexes(space, at),
        *tenant_indexes(space, at, tenant)[1:],
    ]
    if not space.partitioned:
        found += [keys.ADMITTED, keys.tenant_admitted(tenant)]
    return found


def ended_places(space: keys.Keyspace, eval_id: str) -> list[tuple[str, str]]:
    """On a Redis Cluster, what an end frees in slots of their own, the step after
    apply_event.lua: (sorted set, member) pairs. Nothing on one Redis (the script did)."""
    if not space.partitioned:
        return []
    tenant, _ = tenancy.split(eval_id)
    return [
        (keys.ADMITTED, eval_id),
        (keys.tenant_admitted(tenant), eval_id),
        (space.tenant_active(tenant), eval_id),
    ]


def encode_record(record: Record) -> dict[str, str]:
    return {
        name: field_text(value)
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
        args += [name, field_text(value)]
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
