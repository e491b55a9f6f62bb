"""The OpenAPI 3.1 document served at ``/openapi.json``.

It states every rule validation enforces: request bodies come from
``api.schema.request_schema`` (the rules and the settings' limits), query and header formats from
``api.http.queries`` (through ``api.schema.operations``, one entry per route; a test checks every
route has one); response schemas
come from the pydantic models, so they cannot drift from what the handlers send.
"""

from typing import Any

import pydantic

from dispatcher.api.schema import operations, request_schema, responses, ui_operations
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records
from wire import ingest


def _schemas(settings: DispatcherSettings) -> dict[str, Any]:
    found: dict[str, Any] = {}
    models: list[type[pydantic.BaseModel]] = [
        responses.EvaluationList,
        responses.ExecuteResponse,
        responses.OutputBody,
        responses.ErrorBody,
        records.Record,
        ingest.Batch,
    ]
    for model in models:
        schema = model.model_json_schema(ref_template=operations.REF, mode="serialization")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    found.update(request_schema.schemas(settings, operations.REF))
    record = found["Record"]
    for hidden in ("request_digest", "last_seq"):
        record["properties"].pop(hidden, None)
        if hidden in record.get("required", []):
            record["required"].remove(hidden)
    return found


def document(settings: DispatcherSettings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crucible dispatcher",
            "version": "1",
            "description": "Runs evaluation code as Kubernetes Jobs (or local processes) and "
            "reports what happened as it happens. Images: " + ", ".join(sorted(settings.images)),
        },
        "paths": {**operations.paths(), **ui_operations.paths(settings.keyspace().partitions)},
        "components": {
            "schemas": _schemas(settings),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}] if settings.tokens() else [],
    }
