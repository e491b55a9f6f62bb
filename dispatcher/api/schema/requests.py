"""Request bodies of the submit endpoints, their validation, and what a valid one becomes.

Validation reports every bad field, one message each (``api.schema.problems``), by the rules of
``api.schema.fields`` and ``user_env``. Limits come from the settings, passed as the pydantic
validation context, so the models stay free of global state; ``api.schema.request_schema``
states the same rules in the OpenAPI document.
"""

import functools
import hashlib
import json
from typing import Annotated

import pydantic

from dispatcher import quantities, user_env
from dispatcher.api.schema import fields, patterns, problems
from dispatcher.api.schema.limits import TIMEOUT_SECONDS_MIN
from dispatcher.backends import base
from dispatcher.settings import DispatcherSettings
from dispatcher.store import records

EVAL_ID_PATTERN = patterns.EVAL_ID
# The digest's JSON form; one encoder (json.dumps with options builds one per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _settings(info: pydantic.ValidationInfo) -> DispatcherSettings:
    context = info.context
    assert isinstance(context, DispatcherSettings), "validate with context=settings"
    return context


def _cpu_within(value: object, info: pydantic.ValidationInfo) -> object:
    message = None if value is None else fields.cpu_problem(value, _settings(info).limits.cpu_max)
    if message:
        raise problems.fail(message)
    return value


def _memory_within(value: object, info: pydantic.ValidationInfo) -> object:
    maximum = _settings(info).limits.memory_max
    message = None if value is None else fields.memory_problem(value, maximum)
    if message:
        raise problems.fail(message)
    return value


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
        raise problems.fail(f"must be at most {maximum:g}")
    return value


_TIMEOUT = f"Wall-clock limit in seconds, from {TIMEOUT_SECONDS_MIN:g}."


def _code_within(value: str, limit: int) -> str:
    message = fields.text_problem(value)
    if message:
        raise problems.fail(message)
    if len(value.encode("utf-8", "surrogatepass")) > limit:
        raise problems.fail(f"must be at most {limit} bytes")
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
        if value is None:
            return None
        return _code_within(value, _settings(info).limits.code_max_bytes)


class EvaluationRequest(_Submit):
    """Body of ``POST /v1/evaluations``: give ``code`` or ``command``, exactly one."""

    code: pydantic.StrictStr | None = pydantic.Field(
        default=None,
        description="Python source, recorded as the command ['python', '-u', '-c', code]; it "
        "runs with the program read from stdin (local backend: sys.argv[0] is '-') or from a "
        "file the sidecar fetched (Kubernetes: '/crucible/run/program.py'), never from argv.",
    )
    command: list[pydantic.StrictStr] | None = pydantic.Field(
        default=None, min_length=1, description="The command to run, as an argument list."
    )
    image: pydantic.StrictStr | None = pydantic.Field(
        default=None, description="An allow-listed image name (or its reference)."
    )
    timeout_seconds: float | None = pydantic.Field(
        default=None, ge=TIMEOUT_SECONDS_MIN, strict=True, description=_TIMEOUT
    )
    resources: ResourcesRequest | None = None
    env: dict[str, pydantic.StrictStr] | None = pydantic.Field(
        default=None, description="Environment variables for the command. " + user_env.DESCRIPTION
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
            raise problems.fail("the program (first element) must not be empty")
        message = next(filter(None, map(fields.text_problem, value)), None)
        if message:
            raise problems.fail(message)
        limit = _settings(info).limits.code_max_bytes
        if sum(len(arg.encode("utf-8", "surrogatepass")) for arg in value) > limit:
            raise problems.fail(f"must be at most {limit} bytes in all")
        return value

    @pydantic.field_validator("image", mode="after")
    @classmethod
    def _image(cls, value: str | None, info: pydantic.ValidationInfo) -> str | None:
        settings = _settings(info)
        if value is not None and settings.image_ref(value) is None:
            raise problems.fail(f"must be one of: {', '.join(sorted(settings.images))}")
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
            raise problems.fail(f"must have at most {limits.env_max_entries} entries")
        size = sum(
            len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
            for k, v in value.items()
        )
        if size > limits.env_max_bytes:
            raise problems.fail(f"must be at most {limits.env_max_bytes} bytes in all")
        return value

    @pydantic.field_validator("labels", mode="after")
    @classmethod
    def _labels(cls, value: dict[str, str] | None, info: pydantic.ValidationInfo) -> object:
        limit = _settings(info).limits.labels_max_entries
        if value is not None and len(value) > limit:
            raise problems.fail(f"must have at most {limit} entries")
        return value


class ExecuteRequest(_Submit):
    """Body of ``POST /execute``, the original design's endpoint."""

    code: pydantic.StrictStr = pydantic.Field(description="Python source to run.")
    timeout: float | None = pydantic.Field(
        default=None, ge=TIMEOUT_SECONDS_MIN, strict=True, description=_TIMEOUT
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
    ``command``, are the same request. Built with ``model_construct`` from values validation
    already checked and typed (validating them again cost 3 % of a submission's CPU);
    ``tests/unit/dispatcher/test_requests.py`` compares it with the validated model."""

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
        canonical = _CANONICAL(body)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def code_command(code: str) -> list[str]:
    return [*base.CODE_COMMAND, code]


def parse_evaluation(body: object, settings: DispatcherSettings) -> Spec:
    details = fields.body_problems(body) if isinstance(body, dict) else []
    request = problems.validate(EvaluationRequest, body, settings, details)
    resources = request.resources or ResourcesRequest()
    command = request.command if request.code is None else code_command(request.code)
    assert command is not None
    return Spec.model_construct(  # validated values: not validated again (Spec)
        eval_id=request.eval_id,
        command=command,
        image=settings.image_ref(request.image or settings.default_image) or "",
        timeout_seconds=request.timeout_seconds or settings.limits.timeout_seconds_default,
        resources=_resources(resources.cpu, resources.memory, settings),
        env=dict(sorted((request.env or {}).items())),
        labels=dict(sorted((request.labels or {}).items())),
    )


def parse_execute(body: object, settings: DispatcherSettings) -> Spec:
    request = problems.validate(ExecuteRequest, body, settings, [])
    return Spec.model_construct(  # validated values: not validated again (Spec)
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
    return records.Resources.model_construct(
        cpu=_canonical_cpu(cpu or limits.cpu_default),
        memory=_canonical_memory(memory or limits.memory_default),
    )


# Valid quantities (validation came first) in canonical form; most requests repeat a few
# values, and exact Decimal parsing is the costliest step of a submission's validation.
@functools.lru_cache(maxsize=1024, typed=True)
def _canonical_cpu(value: str | int | float) -> str:
    return quantities.format_cpu(quantities.cpu_millis(value))


@functools.lru_cache(maxsize=1024, typed=True)
def _canonical_memory(value: str | int | float) -> str:
    return quantities.format_memory(quantities.memory_bytes(value))
