"""The OpenAPI 3.1 document served at ``/openapi.json``.

Request and response schemas come from the pydantic models, so they cannot drift from what the
handlers accept; paths are listed here (a test checks every route is).
"""

from typing import Any

import pydantic

from dispatcher.api import requests, responses
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records
from wire import ingest

_REF = "#/components/schemas/{model}"
_JSON = "application/json"


def _schemas() -> dict[str, Any]:
    found: dict[str, Any] = {}
    models: list[type[pydantic.BaseModel]] = [
        requests.EvaluationRequest,
        requests.ExecuteRequest,
        responses.EvaluationList,
        responses.ExecuteResponse,
        responses.OutputBody,
        responses.ErrorBody,
        records.Record,
        ingest.Batch,
    ]
    for model in models:
        schema = model.model_json_schema(ref_template=_REF, mode="serialization")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    record = found["Record"]
    for hidden in ("request_digest", "last_seq"):
        record["properties"].pop(hidden, None)
        if hidden in record.get("required", []):
            record["required"].remove(hidden)
    return found


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        401: "Missing or wrong bearer token.",
        404: "No such evaluation.",
        409: "The eval_id exists with a different request.",
        422: "Invalid request: one message per bad field in `details`. Malformed JSON, a body "
        "that is not an object, or a Content-Type other than application/json is reported "
        "the same way, on the field `body`.",
        429: "The queue is full; retry after `Retry-After` seconds.",
        503: "The backend or Redis is unavailable.",
    }
    return {str(s): _json("ErrorBody", text[s]) for s in statuses}


_EVAL_ID = {
    "name": "eval_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": requests.EVAL_ID_PATTERN},
}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _paths() -> dict[str, Any]:
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
                    **_errors(401, 409, 422, 429, 503),
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
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    ),
                    _query("cursor", "next_cursor of the previous page.", {"type": "string"}),
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
                "operationId": "cancelEvaluation",
                "summary": "Cancel: stop the evaluation; its status becomes cancelled",
                "responses": {
                    "200": _json("Record", "The record (unchanged if it had already ended)."),
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
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    _query(
                        "last_event_id",
                        "Resume after this event id (as the header).",
                        {"type": "string"},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "`id:` stream entry id, `event:` type, `data:` event JSON.",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
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
                    **_errors(401, 409, 422, 429, 503),
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
                    **_errors(401, 422, 503),
                },
            },
        },
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
                    }
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


def document(settings: DispatcherSettings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crucible dispatcher",
            "version": "1",
            "description": "Runs evaluation code as Kubernetes Jobs (or local processes) and "
            "reports what happened as it happens. Images: " + ", ".join(sorted(settings.images)),
        },
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}] if settings.tokens() else [],
    }
