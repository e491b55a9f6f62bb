"""The OpenAPI operations of the web page's routes and of what it reads: ``/``, ``/ui`` and its
assets (``api.ui.routes``), ``GET /v1/events`` (``api.streams.global_events``) and
``GET /v1/config`` (``api.service_config``). ``api.schema.openapi`` adds them to
``api.schema.operations``' paths."""

from typing import Any

from dispatcher.api.schema import operations, patterns
from dispatcher.api.streams import global_events
from dispatcher.api.ui import routes as ui_routes

_JSON = "application/json"
_PUBLIC_PAGE = "The page is public (it holds no data): no token."
_CONFIG = {
    "type": "object",
    "required": ["tenant", "images", "default_image", "limits"],
    "properties": {
        "tenant": {"type": ["string", "null"]},
        "images": {"type": "array", "items": {"type": "string"}},
        "default_image": {"type": "string"},
        "limits": {"type": "object"},
    },
}


def paths(partitions: int) -> dict[str, Any]:
    """``partitions``: of the global stream, whose positions name one entry id each."""
    return {**_page(), **_reads(_position(partitions))}


def _position(partitions: int) -> dict[str, Any]:
    return {"type": "string", "pattern": patterns.stream_position(partitions)}


def _event_page(position: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["events", "last_event_id"],
        "properties": {
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "event"],
                    "properties": {"id": position, "event": {"type": "object"}},
                },
            },
            "last_event_id": position,
        },
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _page() -> dict[str, Any]:
    return {
        "/": {
            "get": {
                "operationId": "root",
                "summary": "Redirects to the web page, /ui",
                "security": [],
                "responses": {"302": {"description": "To /ui."}},
            }
        },
        ui_routes.PAGE_PATH: {
            "get": {
                "operationId": "webPage",
                "summary": "The web page: list, watch, submit and cancel evaluations",
                "description": _PUBLIC_PAGE + " It asks for a token and keeps it in the "
                "browser tab's sessionStorage; see docs/ui.md.",
                "security": [],
                "responses": {"200": _html("The page (never cached).")},
            }
        },
        ui_routes.ASSET_ROUTE: {
            "get": {
                "operationId": "webPageAsset",
                "summary": "A script or style sheet of the web page, named by a content hash",
                "description": _PUBLIC_PAGE + " Cached for a year: the version changes when "
                "any asset does.",
                "security": [],
                "parameters": [
                    _path("version", {"type": "string", "pattern": ui_routes.VERSION_PATTERN}),
                    _path("name", {"type": "string", "pattern": ui_routes.ASSET_NAME_PATTERN}),
                ],
                "responses": {
                    "200": {
                        "description": "The asset.",
                        "content": {
                            "text/javascript": {"schema": {"type": "string"}},
                            "text/css": {"schema": {"type": "string"}},
                            "image/svg+xml": {"schema": {"type": "string"}},
                        },
                    },
                    **operations._errors(404),
                },
            }
        },
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _reads(position: dict[str, Any]) -> dict[str, Any]:
    return {
        "/v1/events": {
            "get": {
                "operationId": "streamEvents",
                "summary": "The status events of the caller's evaluations (all, for an operator)",
                "description": "From the global stream: every status event (accepted ... the "
                "verified end; no output) of the caller's evaluations. With `Accept: "
                "text/event-stream`: Server-Sent Events, the events after `Last-Event-ID` "
                "first, then live until the client leaves. Otherwise JSON at once: at most "
                "`limit` events after `last_event_id`, and `last_event_id` to continue from; "
                "without one, no events and the id of the stream's end (follow from there).",
                "parameters": [
                    {**operations.LAST_EVENT_ID_HEADER, "schema": position},
                    operations._query(
                        "last_event_id",
                        "Events after this id, when there is no Last-Event-ID header.",
                        position,
                    ),
                    operations._query(
                        "limit",
                        "Most events in a JSON answer.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": global_events.EVENTS_LIMIT_MAX,
                            "default": global_events.EVENTS_LIMIT_DEFAULT,
                        },
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "JSON: a page of events; or the event stream, one "
                        "message per event (`id:`, `event:` its type, `data:` the event).",
                        "content": {
                            _JSON: {"schema": _event_page(position)},
                            "text/event-stream": {"schema": operations._SSE_MESSAGE},
                        },
                    },
                    **operations._errors(401, 422, 429),
                },
            }
        },
        "/v1/config": {
            "get": {
                "operationId": "getConfig",
                "summary": "What a submission may choose: allow-listed images and the limits",
                "responses": {
                    "200": {
                        "description": "`tenant` (the caller's; null: an operator), "
                        "`images` (names a request may give), `default_image`, and `limits` "
                        "(timeout_seconds_default/_max, cpu_default/_max, memory_default/_max).",
                        "content": {_JSON: {"schema": _CONFIG}},
                    },
                    **operations._errors(401),
                },
            }
        },
    }
