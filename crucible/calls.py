"""The API's calls without I/O: paths, bodies, query strings, and reading the answers. The
sync and the async client differ only in how they send them."""

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from crucible import errors, models, sse

EVALUATIONS = "/v1/evaluations"
# A stream's verified end reaches the record through the dispatcher's consumer group, a
# moment after the stream has it: ``wait`` polls the record this long at most for it.
SETTLE_SECONDS = 10.0
POLL_SECONDS = 0.05
STREAM_HEADERS = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}


def evaluation_path(eval_id: str, suffix: str = "") -> str:
    """The path of an evaluation (``suffix``: ``/events``, ``/output``). The id is quoted, so
    no id can reach another path; ``~`` (an operator's ``TENANT~ID``) stays as it is."""
    return f"{EVALUATIONS}/{urllib.parse.quote(eval_id, safe='~')}{suffix}"


def submission(
    code: str | None,
    command: Sequence[str] | None,
    **fields: Any,
) -> dict[str, Any]:
    """The body of ``POST /v1/evaluations``: the given fields only. The dispatcher checks them
    (``code`` or ``command``, exactly one) and names every bad one in its 422."""
    body: dict[str, Any] = {}
    if code is not None:
        body["code"] = code
    if command is not None:
        body["command"] = list(command)
    for name, value in fields.items():
        if value is not None:
            body[name] = dict(value) if isinstance(value, Mapping) else value
    return body


def list_query(status: str | None, limit: int | None, cursor: str | None) -> dict[str, str]:
    given = {"status": status, "limit": limit, "cursor": cursor}
    return {name: str(value) for name, value in given.items() if value is not None}


def stream_headers(last_event_id: str | None) -> dict[str, str]:
    if last_event_id is None:
        return dict(STREAM_HEADERS)
    return {**STREAM_HEADERS, "Last-Event-ID": last_event_id}


def decode(body: bytes, status: int) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise errors.ProtocolError(f"{status} answer is not JSON") from None


def page(body: object, cursor: str | None) -> tuple[list[models.Evaluation], str | None]:
    """A listing page's records and the next page's cursor (None: that was the last)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        raise errors.ProtocolError("a listing answer without items")
    following = body.get("next_cursor")
    if following is not None and (not isinstance(following, str) or following == cursor):
        raise errors.ProtocolError("a listing answer whose next_cursor goes nowhere")
    return [models.Evaluation.from_json(item) for item in body["items"]], following


def event(message: sse.Message) -> models.Event:
    try:
        body = json.loads(message.data)
    except ValueError:
        raise errors.ProtocolError(f"an {message.event!r} event whose data is not JSON") from None
    return models.Event.from_json(body, id=message.id)


def check_stream(content_type: str | None) -> None:
    if not (content_type or "").startswith("text/event-stream"):
        raise errors.ProtocolError(f"expected an event stream, got {content_type!r}")
