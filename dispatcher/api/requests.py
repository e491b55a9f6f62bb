"""Request bodies of the submit endpoints, their validation, and what a valid one becomes.

Validation reports every bad field, one message each, as ``InvalidRequestError`` details
``[{"field": "resources.memory", "message": ...}]``. Limits come from the settings, passed as
the pydantic validation context, so the models stay free of global state.
"""

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import pydantic
from pydantic_core import PydanticCustomError

from dispatcher import errors, quantities
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records

EVAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV_PREFIX = "CRUCIBLE_"
# Label names and values as Kubernetes checks them; keys have no prefix because the backend
# puts them under its own (user.crucible.dev/).
_LABEL = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_MAX = 63


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def _settings(info: pydantic.ValidationInfo) -> DispatcherSettings:
    context = info.context
    assert isinstance(context, DispatcherSettings), "validate with context=settings"
    return context


def _bounded(value: object, parse: Callable[[object], int], maximum: str) -> object:
    if value is None:
        return None
    try:
        amount = parse(value)
    except quantities.QuantityError as e:
        raise _fail(str(e)) from None
    if amount > parse(maximum):
        raise _fail(f"must be at most {maximum}")
    return value


def _cpu_within(value: object, info: pydantic.ValidationInfo) -> object:
    return _bounded(value, quantities.cpu_millis, _settings(info).limits.cpu_max)


def _memory_within(value: object, info: pydantic.ValidationInfo) -> object:
    return _bounded(value, quantities.memory_bytes, _settings(info).limits.memory_max)


# Limits as Kubernetes quantities, checked against the configured maximums (both endpoints).
_CpuQuantity = Annotated[str | int | float | None, pydantic.BeforeValidator(_cpu_within)]
_MemoryQuantity = Annotated[str | int | None, pydantic.BeforeValidator(_memory_within)]


class ResourcesRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    cpu: _CpuQuantity = pydantic.Field(
        default=None, description="CPU limit, a Kubernetes quantity: '500m', '0.5', '2'."
    )
    memory: _MemoryQuantity = pydantic.Field(
        default=None, description="Memory limit, a Kubernetes quantity: '512Mi', '1G'."
    )


def _timeout_within(value: float | None, info: pydantic.ValidationInfo) -> float | None:
    maximum = _settings(info).limits.timeout_seconds_max
    if value is not None and value > maximum:
        raise _fail(f"must be at most {maximum:g}")
    return value


class _Submit(pydantic.BaseModel):
    """Fields and checks both submit endpoints share."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    eval_id: str | None = pydantic.Field(
        default=None,
        pattern=EVAL_ID_PATTERN,
        description="Caller's id; a retry with the same id and body returns the same record.",
    )

    @pydantic.field_validator("code", mode="after", check_fields=False)
    @classmethod
    def _code(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        limit = _settings(info).limits.code_max_bytes
        if value is not None:
            if "\x00" in value:
                raise _fail("must not contain NUL characters")
            if len(value.encode("utf-8", "surrogatepass")) > limit:
                raise _fail(f"must be at most {limit} bytes")
        return value


class EvaluationRequest(_Submit):
    """Body of ``POST /v1/evaluations``: give ``code`` or ``command``, not both."""

    code: pydantic.StrictStr | None = pydantic.Field(
        default=None, description="Python source, run as ['python', '-u', '-c', code]."
    )
    command: list[pydantic.StrictStr] | None = pydantic.Field(
        default=None, min_length=1, description="The command to run, as an argument list."
    )
    image: pydantic.StrictStr | None = pydantic.Field(
        default=None, description="An allow-listed image name (or its reference)."
    )
    timeout_seconds: float | None = pydantic.Field(
        default=None, gt=0, strict=True, description="Wall-clock limit in seconds."
    )
    resources: ResourcesRequest | None = None
    env: dict[str, pydantic.StrictStr] | None = pydantic.Field(
        default=None, description="Environment variables for the command."
    )
    labels: dict[str, pydantic.StrictStr] | None = pydantic.Field(
        default=None, description="Labels (Kubernetes label rules) put on the Job."
    )

    @pydantic.field_validator("command", mode="after")
    @classmethod
    def _command(cls, value: list[str] | None, info: pydantic.ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if not value[0]:
            raise _fail("the program (first element) must not be empty")
        if any("\x00" in arg for arg in value):
            raise _fail("must not contain NUL characters")
        limit = _settings(info).limits.code_max_bytes
        if sum(len(arg.encode("utf-8", "surrogatepass")) for arg in value) > limit:
            raise _fail(f"must be at most {limit} bytes in all")
        return value

    @pydantic.field_validator("image", mode="after")
    @classmethod
    def _image(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        settings = _settings(info)
        if value is not None and settings.image_ref(value) is None:
            raise _fail(f"must be one of: {', '.join(sorted(settings.images))}")
        return value

    @pydantic.field_validator("timeout_seconds", mode="after")
    @classmethod
    def _timeout(cls, value: float | None, info: pydantic.ValidationInfo) -> float | None:
        return _timeout_within(value, info)

    @pydantic.field_validator("env", mode="after")
    @classmethod
    def _env(cls, value: dict[str, str] | None, info: pydantic.ValidationInfo) -> object:
        limits = _settings(info).limits
        if value is None:
            return None
        if len(value) > limits.env_max_entries:
            raise _fail(f"must have at most {limits.env_max_entries} entries")
        size = sum(
            len(k.encode()) + len(v.encode("utf-8", "surrogatepass")) for k, v in value.items()
        )
        if size > limits.env_max_bytes:
            raise _fail(f"must be at most {limits.env_max_bytes} bytes in all")
        return value

    @pydantic.field_validator("labels", mode="after")
    @classmethod
    def _labels(cls, value: dict[str, str] | None, info: pydantic.ValidationInfo) -> object:
        limit = _settings(info).limits.labels_max_entries
        if value is not None and len(value) > limit:
            raise _fail(f"must have at most {limit} entries")
        return value


class ExecuteRequest(_Submit):
    """Body of ``POST /execute``, the original design's endpoint."""

    code: pydantic.StrictStr = pydantic.Field(description="Python source to run.")
    timeout: float | None = pydantic.Field(
        default=None, gt=0, strict=True, description="Wall-clock limit in seconds."
    )
    memory_limit: _MemoryQuantity = pydantic.Field(
        default=None, description="Memory limit, a Kubernetes quantity."
    )
    cpu_limit: _CpuQuantity = pydantic.Field(
        default=None, description="CPU limit, a Kubernetes quantity."
    )

    @pydantic.field_validator("timeout", mode="after")
    @classmethod
    def _timeout(cls, value: float | None, info: pydantic.ValidationInfo) -> float | None:
        return _timeout_within(value, info)


class Spec(pydantic.BaseModel):
    """A valid request with every default filled in and quantities in canonical form.

    Its digest decides idempotency: ``0.5`` and ``500m`` CPU, or ``code`` and the equivalent
    ``command``, are the same request."""

    model_config = pydantic.ConfigDict(frozen=True)

    eval_id: str | None
    command: list[str]
    image: str
    timeout_seconds: float
    resources: records.Resources
    env: dict[str, str]
    labels: dict[str, str]

    def digest(self) -> str:
        body = self.model_dump(mode="json", exclude={"eval_id"})
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def code_command(code: str) -> list[str]:
    return ["python", "-u", "-c", code]


def parse_evaluation(body: object, settings: DispatcherSettings) -> Spec:
    details = _key_problems(body) if isinstance(body, dict) else _object_problems(body)
    request = _validate(EvaluationRequest, body, settings, details)
    assert isinstance(request, EvaluationRequest)
    resources = request.resources or ResourcesRequest()
    command = request.command if request.code is None else code_command(request.code)
    assert command is not None
    return Spec(
        eval_id=request.eval_id,
        command=command,
        image=settings.image_ref(request.image or settings.default_image) or "",
        timeout_seconds=request.timeout_seconds or settings.limits.timeout_seconds_default,
        resources=_resources(resources.cpu, resources.memory, settings),
        env=dict(sorted((request.env or {}).items())),
        labels=dict(sorted((request.labels or {}).items())),
    )


def parse_execute(body: object, settings: DispatcherSettings) -> Spec:
    request = _validate(ExecuteRequest, body, settings, _object_problems(body))
    assert isinstance(request, ExecuteRequest)
    return Spec(
        eval_id=request.eval_id,
        command=code_command(request.code),
        image=settings.images[settings.default_image],
        timeout_seconds=request.timeout or settings.limits.timeout_seconds_default,
        resources=_resources(request.cpu_limit, request.memory_limit, settings),
        env={},
        labels={},
    )


def _resources(cpu: object, memory: object, settings: DispatcherSettings) -> records.Resources:
    limits = settings.limits
    return records.Resources(
        cpu=quantities.format_cpu(quantities.cpu_millis(cpu or limits.cpu_default)),
        memory=quantities.format_memory(quantities.memory_bytes(memory or limits.memory_default)),
    )


def _validate(
    model: type[_Submit], body: object, settings: DispatcherSettings, details: list[dict[str, str]]
) -> _Submit:
    if details and not isinstance(body, dict):
        raise errors.InvalidRequestError("the request body is not a JSON object", details=details)
    try:
        request = model.model_validate(body, context=settings)
    except pydantic.ValidationError as e:
        details = _merge(details, _field_problems(e))
    else:
        if not details:
            return request
    raise errors.InvalidRequestError(
        f"{len(details)} invalid field{'s' if len(details) > 1 else ''}", details=details
    )


def _object_problems(body: object) -> list[dict[str, str]]:
    if isinstance(body, dict):
        return []
    return [{"field": "body", "message": "must be a JSON object"}]


def _key_problems(body: Mapping[str, Any]) -> list[dict[str, str]]:
    """Checks the models cannot express per field: the code/command choice, and per-key rules
    for env and labels (reported as ``env.NAME`` / ``labels.KEY``)."""
    problems: list[dict[str, str]] = []
    choice = _code_xor_command(body)
    if choice is not None:
        problems.append(choice)
    for name in _dict_keys(body.get("env")):
        message = _env_name_problem(name)
        if message:
            problems.append({"field": f"env.{name}", "message": message})
    for key, value in _dict_items(body.get("labels")):
        message = _label_problem(key, value)
        if message:
            problems.append({"field": f"labels.{key}", "message": message})
    return problems


def _code_xor_command(body: Mapping[str, Any]) -> dict[str, str] | None:
    has_code, has_command = body.get("code") is not None, body.get("command") is not None
    if has_code and has_command:
        return {"field": "command", "message": "give either code or command, not both"}
    if not has_code and not has_command:
        return {"field": "code", "message": "code or command is required"}
    return None


def _dict_keys(value: object) -> list[str]:
    return [k for k in value if isinstance(k, str)] if isinstance(value, dict) else []


def _dict_items(value: object) -> list[tuple[str, object]]:
    return list(value.items()) if isinstance(value, dict) else []


def _env_name_problem(name: str) -> str | None:
    if not _ENV_NAME.match(name):
        return "is not a valid variable name (letters, digits, underscore; no leading digit)"
    if name.upper().startswith(_RESERVED_ENV_PREFIX):
        return f"names starting with {_RESERVED_ENV_PREFIX} are reserved for crucible"
    return None


_LABEL_RULE = "alphanumerics, '-', '_', '.', beginning and ending with an alphanumeric"


def _label_problem(key: str, value: object) -> str | None:
    if not key or len(key) > _LABEL_MAX or not _LABEL.match(key):
        return f"key must be 1-63 characters: {_LABEL_RULE}"
    if isinstance(value, str) and (len(value) > _LABEL_MAX or not _LABEL.match(value)):
        return f"value must be at most 63 characters: {_LABEL_RULE}"
    return None


def _field_problems(error: pydantic.ValidationError) -> list[dict[str, str]]:
    """One message per field: the first pydantic gives for it."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        field = _field_name(item["loc"])
        problems.setdefault(field, _message(item))
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


def _merge(first: list[dict[str, str]], second: list[dict[str, str]]) -> list[dict[str, str]]:
    """Both lists, one entry per field: where both report a field, the first list's wins."""
    merged: dict[str, str] = {}
    for item in [*first, *second]:
        merged.setdefault(item["field"], item["message"])
    return [{"field": f, "message": m} for f, m in merged.items()]
