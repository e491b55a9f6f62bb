"""The operations of the OpenAPI document (``api.schema.openapi``): one entry per route, with the
formats of parameters as ``api.http.queries`` checks them and every answer a handler can give.
"""

from typing import Any

from dispatcher import tenants
from dispatcher.api.http import queries
from dispatcher.store import records
from wire import events, ingest, ingest_route

REF = "#/components/schemas/{model}"
_JSON = "application/json"


def paths() -> dict[str, Any]:
    return {**_evaluations(), **_legacy_and_internal(), **_service()}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        401: "Missing or wrong bearer token.",
        404: "No such evaluation.",
        408: "The body did not arrive whole within the dispatcher's body timeout.",
        409: "The eval_id exists with a different request.",
        413: "The body is larger than the dispatcher takes.",
        422: "Invalid request: one message per bad field in `details`. Malformed JSON, a body "
        "that is not an object, or a Content-Type other than application/json is reported "
        "the same way, on the field `body`.",
        429: "The queue is full; retry after `Retry-After` seconds.",
        503: "The backend or Redis is unavailable.",
    }
    return {str(s): _json("ErrorBody", text[s]) for s in statuses}


_STREAM_ID = {"type": "string", "pattern": queries.STREAM_ID_PATTERN}
LAST_EVENT_ID_HEADER: dict[str, Any] = {
    "name": "Last-Event-ID",
    "in": "header",
    "required": False,
    "description": "Resume after this event id (an `id:` of this stream).",
    "schema": _STREAM_ID,
}
# One event of the stream (OpenAPI 3.1: the schema of a text/event-stream describes an event).
_SSE_MESSAGE = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": _STREAM_ID,
        "event": {"type": "string", "enum": [t.value for t in events.EventType]},
        "data": {"type": "string", "contentMediaType": _JSON},
    },
}
_EVAL_ID = {
    "name": "eval_id",
    "in": "path",
    "required": True,
    "description": "The evaluation's id as the caller's tenant names it; an operator names a "
    "tenant's evaluation `TENANT~ID`.",
    "schema": {"type": "string", "pattern": tenants.QUALIFIED_ID_PATTERN},
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _evaluations() -> dict[str, Any]:
    statuses = [s.value for s in records.Status]
    return {
        "/v1/evaluations": {
            "post": {
                "operationId": "createEvaluation",
                "summary": "Submit an evaluation",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("EvaluationRequest")}},
                },
                "responses": {
                    "201": _json("Record", "Accepted; the new record."),
                    "200": _json("Record", "Same eval_id and body as before; the existing record."),
                    **_errors(401, 408, 409, 413, 422, 429, 503),
                },
            },
            "get": {
                "operationId": "listEvaluations",
                "summary": "List evaluations, newest first",
                "parameters": [
                    _query("status", "Only this status.", {"type": "string", "enum": statuses}),
                    _query(
                        "limit",
                        "Page size.",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": queries.LIST_LIMIT_MAX,
                            "default": queries.LIST_LIMIT_DEFAULT,
                        },
                    ),
                    _query(
                        "cursor",
                        "next_cursor of the previous page.",
                        {"type": "string", "pattern": queries.CURSOR_PATTERN},
                    ),
                ],
                "responses": {"200": _json("EvaluationList", "One page."), **_errors(401, 422)},
            },
        },
        "/v1/evaluations/{eval_id}": {
            "parameters": [_EVAL_ID],
            "get": {
                "operationId": "getEvaluation",
                "summary": "The evaluation's record",
                "responses": {"200": _json("Record", "The record."), **_errors(401, 404)},
            },
            "delete": {
                "operationId": "cancelEvaluationByDelete",
                "deprecated": True,
                "summary": "Cancel, as the original design spells it (same as POST .../cancel)",
                "description": "Kept for the original design's clients. It cancels and keeps "
                "the record, exactly as `POST /v1/evaluations/{eval_id}/cancel`: nothing is "
                "deleted, the evaluation stays readable with status `cancelled`.",
                "responses": {
                    "202": _json("Record", "The cancellation is accepted; the record as it is."),
                    **_errors(401, 404, 503),
                },
            },
        },
        "/v1/evaluations/{eval_id}/cancel": {
            "parameters": [_EVAL_ID],
            "post": {
                "operationId": "cancelEvaluation",
                "summary": "Cancel: stop the evaluation; its status becomes cancelled",
                "description": "Cancels and keeps the record (so this is no DELETE): the "
                "evaluation stays readable with status `cancelled`, and its event stream "
                "carries the verified end once the process or Job has stopped. Cancelling an "
                "evaluation that has ended changes nothing.",
                "responses": {
                    "202": _json(
                        "Record",
                        "The cancellation is accepted; the record as it is now (unchanged if "
                        "the evaluation had already ended).",
                    ),
                    **_errors(401, 404, 503),
                },
            },
        },
        "/v1/evaluations/{eval_id}/events": {
            "parameters": [_EVAL_ID],
            "get": {
                "operationId": "streamEvaluationEvents",
                "summary": "Server-Sent Events: replay, then live, until the first terminal event",
                "parameters": [
                    LAST_EVENT_ID_HEADER,
                    _query(
                        "last_event_id",
                        "Resume after this event id, when there is no Last-Event-ID header.",
                        _STREAM_ID,
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "One message per event: `id:` the stream entry id, "
                        "`event:` the event type, `data:` the event as JSON (one line).",
                        "content": {"text/event-stream": {"schema": _SSE_MESSAGE}},
                    },
                    **_errors(401, 404, 422),
                },
            },
        },
        "/v1/evaluations/{eval_id}/output": {
            "parameters": [_EVAL_ID],
            "get": {
                "operationId": "getEvaluationOutput",
                "summary": "The full captured output",
                "parameters": [
                    _query(
                        "stream",
                        "Only this stream, as text/plain.",
                        {"type": "string", "enum": ["stdout", "stderr"]},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "JSON with both streams, or one stream as text.",
                        "content": {
                            _JSON: {"schema": _ref("OutputBody")},
                            "text/plain": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(401, 404, 422),
                },
            },
        },
    }


def _legacy_and_internal() -> dict[str, Any]:
    return {
        "/execute": {
            "post": {
                "operationId": "execute",
                "summary": "The original design's submit endpoint (kept for its clients)",
                "requestBody": {
                    "required": True,
                    "content": {_JSON: {"schema": _ref("ExecuteRequest")}},
                },
                "responses": {
                    "200": _json("ExecuteResponse", "Created, or the same request again."),
                    **_errors(401, 408, 409, 413, 422, 429, 503),
                },
            },
        },
        ingest.ROUTE: {
            "parameters": [_EVAL_ID],
            "post": {
                "operationId": "ingestEvents",
                "summary": "Internal: an evaluation's sidecar hands in its events",
                "description": "Authenticated with the evaluation's own sidecar token (an HMAC "
                "of its id), not an API token. Only the types a sidecar produces, about that "
                "evaluation, never verified; the batch is published in order or not at all. "
                "See docs/security.md.",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("Batch")}}},
                "responses": {
                    "200": {
                        "description": "Published (or already there: `duplicate`; over the "
                        "evaluation's byte budget: `dropped`).",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(401, 408, 422, 503),
                },
            },
        },
        ingest_route.CODE_ROUTE: {
            "parameters": [_EVAL_ID],
            "get": {
                "operationId": "evaluationProgram",
                "summary": "Internal: a `code` evaluation's sidecar fetches its program",
                "description": "Authenticated with the evaluation's own sidecar token. The "
                "program text, which the sidecar writes where the command reads it (argv takes "
                "128 KiB per argument; code may be 1 MiB). See docs/kubernetes.md.",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {
                        "description": "The program.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 404),
                },
            },
        },
    }


def _service() -> dict[str, Any]:
    return {
        "/healthz": {"get": _probe("healthz", "Liveness: the process answers.")},
        "/readyz": {"get": _probe("readyz", "Readiness: Redis and the backend are reachable.")},
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": {
                    "200": {
                        "description": "Metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    },
                    **_errors(401),
                },
            }
        },
    }


def _probe(name: str, summary: str) -> dict[str, Any]:
    body = {"content": {_JSON: {"schema": {"type": "object"}}}}
    return {
        "operationId": name,
        "summary": summary,
        "security": [],
        "responses": {
            "200": {"description": "Ready.", **body},
            "503": {"description": "Not ready.", **body},
        },
    }
