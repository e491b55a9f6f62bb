"""The submit bodies' JSON Schemas as the OpenAPI document states them: every rule validation
enforces (``api.schema.requests``), with the limits of these settings, so that a body valid by the
schema is accepted and any other is refused.

Written out rather than derived from the models: pydantic states neither the settings' limits
nor the rules its validators check. A test holds the property names to the models'. Byte totals
(``code``, ``command``, ``env``) are stated in descriptions: JSON Schema counts characters.
"""

from typing import Any

import pydantic

from dispatcher import quantities, user_env
from dispatcher.api.schema import patterns, requests
from dispatcher.api.schema.limits import TIMEOUT_SECONDS_MIN
from dispatcher.settings import DispatcherSettings

_TEXT = {"type": "string", "pattern": patterns.TEXT}
# What the pattern cannot say: it speaks of code points, and JSON can spell a lone surrogate.
_NO_NUL = "; no NUL characters, no lone surrogates (text must encode as UTF-8)."


def schemas(settings: DispatcherSettings, ref: str) -> dict[str, Any]:
    """``EvaluationRequest``, ``ExecuteRequest`` and ``ResourcesRequest``; ``ref`` is the
    ``$ref`` template (``{model}`` is replaced by a schema name)."""
    return {
        "EvaluationRequest": _evaluation(settings, ref),
        "ExecuteRequest": _execute(settings),
        "ResourcesRequest": _object(
            requests.ResourcesRequest,
            {"cpu": _nullable(_cpu(settings)), "memory": _nullable(_memory(settings))},
        ),
    }


def _evaluation(settings: DispatcherSettings, ref: str) -> dict[str, Any]:
    limits = settings.limits
    code_bytes = f" At most {limits.code_max_bytes} bytes (UTF-8)"
    properties = {
        "eval_id": _nullable(_eval_id()),
        "code": _nullable(_TEXT, note=code_bytes + _NO_NUL),
        "command": _nullable(
            {
                "type": "array",
                "minItems": 1,
                "prefixItems": [{**_TEXT, "minLength": 1}],
                "items": _TEXT,
            },
            note=code_bytes + " in all; the first element is not empty" + _NO_NUL,
        ),
        "image": _nullable({"type": "string", "enum": _images(settings)}),
        "timeout_seconds": _nullable(_timeout(settings)),
        "resources": _nullable({"$ref": ref.format(model="ResourcesRequest")}),
        "env": _nullable(
            {
                "type": "object",
                "maxProperties": limits.env_max_entries,
                "propertyNames": {
                    "pattern": user_env.NAME_PATTERN,
                    "maxLength": user_env.NAME_MAX_CHARS,
                    "not": {"pattern": user_env.DENIED_PATTERN},
                },
                "additionalProperties": _TEXT,
            },
            note=f" At most {limits.env_max_bytes} bytes of names and values in all" + _NO_NUL,
        ),
        "labels": _nullable(
            {
                "type": "object",
                "maxProperties": limits.labels_max_entries,
                "propertyNames": {"pattern": patterns.LABEL_KEY},
                "additionalProperties": {"type": "string", "pattern": patterns.LABEL_VALUE},
            }
        ),
    }
    schema = _object(requests.EvaluationRequest, properties)
    # Exactly one of the two; null counts as absent.
    null = {"type": "null"}
    schema["oneOf"] = [
        {"required": ["code"], "properties": {"code": {"type": "string"}, "command": null}},
        {"required": ["command"], "properties": {"command": {"type": "array"}, "code": null}},
    ]
    return schema


def _execute(settings: DispatcherSettings) -> dict[str, Any]:
    properties = {
        "eval_id": _nullable(_eval_id()),
        "code": {
            **_TEXT,
            "description": f" At most {settings.limits.code_max_bytes} bytes (UTF-8)" + _NO_NUL,
        },
        "timeout": _nullable(_timeout(settings)),
        "memory_limit": _nullable(_memory(settings)),
        "cpu_limit": _nullable(_cpu(settings)),
    }
    return _object(requests.ExecuteRequest, properties)


def _object(model: type[pydantic.BaseModel], properties: dict[str, Any]) -> dict[str, Any]:
    for name, field in model.model_fields.items():
        # The field's own description, then what the schema adds (notes begin with a space).
        text = (field.description or "") + properties[name].get("description", "")
        if text:
            properties[name]["description"] = text.strip()
    schema: dict[str, Any] = {
        "type": "object",
        "title": model.__name__,
        "properties": properties,
        "additionalProperties": False,
    }
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    if required:
        schema["required"] = required
    if model.__doc__:
        schema["description"] = model.__doc__.split("\n\n")[0].replace("``", "`")
    return schema


def _nullable(schema: dict[str, Any], *, note: str = "") -> dict[str, Any]:
    nullable: dict[str, Any] = {"anyOf": [schema, {"type": "null"}]}
    if note:
        nullable["description"] = note
    return nullable


def _eval_id() -> dict[str, Any]:
    return {"type": "string", "pattern": patterns.EVAL_ID}


def _images(settings: DispatcherSettings) -> list[str]:
    return sorted({*settings.images, *settings.images.values()})


def _timeout(settings: DispatcherSettings) -> dict[str, Any]:
    maximum = settings.limits.timeout_seconds_max
    return {"type": "number", "minimum": TIMEOUT_SECONDS_MIN, "maximum": maximum}


def _cpu(settings: DispatcherSettings) -> dict[str, Any]:
    max_millis = settings.limits.cpu_max_millis
    return {
        "anyOf": [
            {"type": "string", "pattern": patterns.cpu(max_millis)},
            {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": max_millis / 1000,
                "multipleOf": 0.001,
            },
        ],
        "description": f"Above 0, at most {quantities.format_cpu(max_millis)} "
        f"({max_millis} millicores): '250m', '2', '0.5', or a number of cores.",
    }


def _memory(settings: DispatcherSettings) -> dict[str, Any]:
    max_bytes = settings.limits.memory_max_bytes
    suffixes = ", ".join(s for s in patterns.MEMORY_UNITS if s)
    return {
        "anyOf": [
            {"type": "string", "pattern": patterns.memory(max_bytes)},
            {"type": "integer", "minimum": 1, "maximum": max_bytes},
        ],
        "description": f"Above 0, at most {quantities.format_memory(max_bytes)}: a whole number "
        f"of bytes with an optional suffix ({suffixes}), e.g. '512Mi', or a number of bytes.",
    }
