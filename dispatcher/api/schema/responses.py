"""Response bodies that are not the record itself (their models feed the OpenAPI document)."""

from typing import Any, Literal

import pydantic


class EvaluationList(pydantic.BaseModel):
    items: list[dict[str, Any]] = pydantic.Field(
        description="Summaries of records (no command, output or error), newest first."
    )
    next_cursor: str | None = pydantic.Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


class ExecuteResponse(pydantic.BaseModel):
    """The original design's answer to ``POST /execute``."""

    eval_id: str
    job_name: str | None
    status: Literal["created"] = "created"
    message: str


class OutputBody(pydantic.BaseModel):
    stdout: str
    stderr: str
    truncated: bool = pydantic.Field(
        description="Output is missing: capped by the wrapper, or trimmed from the stream."
    )


class FieldProblem(pydantic.BaseModel):
    field: str
    message: str


class ErrorDetail(pydantic.BaseModel):
    code: str
    message: str
    details: list[FieldProblem] | dict[str, Any] | None = None


class ErrorBody(pydantic.BaseModel):
    error: ErrorDetail
