"""Query parameters (and the SSE resume header): their formats, stated as they are in the
OpenAPI document, and their parsing, where anything else is a 422 naming the parameter.

A listing cursor is ``<created_at>~<eval_id>`` (the last record of the page, its id qualified
with its tenant: ``wire.tenancy``): the store's own cursor spelled as a pattern can state, so that
whatever matches it is a position to list from.
"""

import dataclasses
import functools
import re

from aiohttp import web

from dispatcher import errors, tenants
from dispatcher.api.schema import patterns
from dispatcher.store import layout
from dispatcher.store.records import Status

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
# created_at as repr() writes a timestamp (fixed notation below 1e16), then the id.
CURSOR_PATTERN = r"^[0-9]{1,16}(?:\.[0-9]{1,17})?~" + tenants.QUALIFIED_ID_PATTERN.removeprefix("^")
STREAM_ID_PATTERN = patterns.stream_id()
_CURSOR = patterns.compile_full(CURSOR_PATTERN)
_STREAM_ID = patterns.compile_full(STREAM_ID_PATTERN)
_LIMIT = re.compile("[0-9]{1,9}")  # ASCII digits: str.isdigit() would take '²'


@dataclasses.dataclass(frozen=True)
class ListQuery:
    status: Status | None
    limit: int
    cursor: str | None
    """The store's cursor."""


def list_query(request: web.Request) -> ListQuery:
    problems: list[dict[str, str]] = []
    status: Status | None = None
    limit = LIST_LIMIT_DEFAULT
    cursor: str | None = None
    query = request.query
    if "status" in query:
        try:
            status = Status(query["status"])
        except ValueError:
            problems.append(_problem("status", f"must be one of {[s.value for s in Status]}"))
    if "limit" in query:
        raw = query["limit"]
        if _LIMIT.fullmatch(raw) and 1 <= int(raw) <= LIST_LIMIT_MAX:
            limit = int(raw)
        else:
            problems.append(_problem("limit", f"must be an integer from 1 to {LIST_LIMIT_MAX}"))
    if "cursor" in query:
        cursor = _store_cursor(query["cursor"])
        if cursor is None:
            problems.append(_problem("cursor", "must be the next_cursor of a listing"))
    if problems:
        raise errors.InvalidRequestError("invalid query", details=problems)
    return ListQuery(status, limit, cursor)


def _store_cursor(text: str) -> str | None:
    if not _CURSOR.fullmatch(text):
        return None
    created_at, _, eval_id = text.partition("~")
    return layout.encode_cursor(eval_id, float(created_at))


def next_cursor(store_cursor: str | None) -> str | None:
    """The store's cursor of the next page as the API spells it."""
    if store_cursor is None:
        return None
    created_at, eval_id = layout.decode_cursor(store_cursor)
    return f"{created_at!r}~{eval_id}"


def resume_id(request: web.Request, *, partitions: int | None = None) -> str | None:
    """Where an event stream resumes: the ``Last-Event-ID`` header, else ``?last_event_id=``;
    each must be a stream entry id when present (``partitions``: a position in the global
    stream of that many partitions)."""
    header = request.headers.get("Last-Event-ID")
    query = request.query.get("last_event_id")
    valid = _STREAM_ID if partitions is None else _position(partitions)
    problems = [
        _problem(field, "must be an event id from this stream")
        for field, value in (("Last-Event-ID", header), ("last_event_id", query))
        if value is not None and not valid.fullmatch(value)
    ]
    if problems:
        raise errors.InvalidRequestError("invalid Last-Event-ID", details=problems)
    return header if header is not None else query


@functools.cache
def _position(partitions: int) -> re.Pattern[str]:
    return patterns.compile_full(patterns.stream_position(partitions))


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}
