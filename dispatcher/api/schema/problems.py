"""One message per bad field: ``InvalidRequestError`` details ``[{"field", "message"}]`` from
pydantic's errors and from the checks a model cannot express, merged.
"""

from typing import Any, TypeVar

import pydantic
from pydantic_core import PydanticCustomError

from dispatcher import errors

Problems = list[dict[str, str]]
Model = TypeVar("Model", bound=pydantic.BaseModel)


def fail(message: str) -> PydanticCustomError:
    """What a field validator raises: ``message`` becomes the field's one message."""
    return PydanticCustomError("invalid", message)


def validate(model: type[Model], body: object, context: object, details: Problems) -> Model:
    """``body`` as ``model``, or ``InvalidRequestError`` with ``details`` and the model's own
    problems (where both name a field, ``details`` wins)."""
    if not isinstance(body, dict):
        raise errors.InvalidRequestError(
            "the request body is not a JSON object",
            details=[{"field": "body", "message": "must be a JSON object"}],
        )
    try:
        request = model.model_validate(body, context=context)
    except pydantic.ValidationError as e:
        details = merge(details, _from_pydantic(e))
    else:
        if not details:
            return request
    raise errors.InvalidRequestError(
        f"{len(details)} invalid field{'s' if len(details) > 1 else ''}", details=details
    )


def merge(first: Problems, second: Problems) -> Problems:
    """Both lists, one entry per field: where both report a field, the first list's wins."""
    merged: dict[str, str] = {}
    for item in [*first, *second]:
        merged.setdefault(item["field"], item["message"])
    return [{"field": f, "message": m} for f, m in merged.items()]


def _from_pydantic(error: pydantic.ValidationError) -> Problems:
    """One message per field: the first pydantic gives for it."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        problems.setdefault(_field_name(item["loc"]), _message(item))
    return [{"field": f, "message": m} for f, m in problems.items()]


def _field_name(loc: tuple[int | str, ...]) -> str:
    # A list element's index ("command.1") is dropped: the field is what gets one message.
    parts = [p for p in loc if isinstance(p, str)]
    return ".".join(parts) or "body"


def _message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] == "string_pattern_mismatch":
        return f"must match {item['ctx']['pattern']}"
    return str(item["msg"])
