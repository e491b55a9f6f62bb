"""The client's errors: one root, a class per answer a caller handles differently.

    CrucibleError
    ├── TransportError          the dispatcher could not be reached, or the connection broke
    ├── ProtocolError           it answered something this client cannot read
    ├── WaitTimeoutError        ``wait`` ran out of time (also a builtin ``TimeoutError``)
    └── ApiError                an HTTP error answer: status, code, message, details
        ├── UnauthorizedError   401: no token, or not one the dispatcher knows
        ├── NotFoundError       404: no such evaluation (or another tenant's: the same answer)
        ├── ConflictError       409: the eval_id exists with a different request
        ├── InvalidRequestError 422: ``field_errors`` holds one message per bad field
        ├── RateLimitedError    429: nothing was created; retry after ``retry_after`` seconds
        └── UnavailableError    503: Redis or the backend is away; ``retry_after`` too

Messages are built from the dispatcher's answer and pass through the client's redaction, so
the bearer token never appears in them.
"""

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

# Upstream text copied into a message (a proxy's HTML page, say) is cut to this.
MAX_UPSTREAM_TEXT = 500


class CrucibleError(Exception):
    """Anything the client raises on purpose."""


class TransportError(CrucibleError):
    """No answer: connection refused, reset or timed out."""


class ProtocolError(CrucibleError):
    """An answer that is not what the API documents (not JSON, a field missing)."""


class WaitTimeoutError(CrucibleError, TimeoutError):
    """``wait`` gave up before the evaluation ended; it may still be running."""


class ApiError(CrucibleError):
    """The dispatcher answered with an error (``{"error": {"code", "message", "details"}}``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after
        super().__init__("\n".join(_lines(status, code, message, details)))


class UnauthorizedError(ApiError):
    pass


class NotFoundError(ApiError):
    pass


class ConflictError(ApiError):
    pass


class InvalidRequestError(ApiError):
    @property
    def field_errors(self) -> dict[str, str]:
        """``{field: message}`` from ``details`` (messages of a repeated field joined)."""
        found: dict[str, str] = {}
        for problem in self.details if isinstance(self.details, list) else []:
            if isinstance(problem, Mapping):
                field, text = str(problem.get("field")), str(problem.get("message"))
                found[field] = f"{found[field]}; {text}" if field in found else text
        return found


class RateLimitedError(ApiError):
    pass


class UnavailableError(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitedError,
    503: UnavailableError,
}


def _lines(status: int, code: str, message: str, details: Any) -> list[str]:
    lines = [f"{status} {code}: {message}"]
    if isinstance(details, list):
        lines += [
            f"  {d.get('field')}: {d.get('message')}" for d in details if isinstance(d, Mapping)
        ]
    return lines


def from_response(
    status: int,
    reason: str,
    body: bytes,
    retry_after: str | None,
    redact: Callable[[str], str],
) -> ApiError:
    """The error for an answer of ``status``; a body that is not crucible's error JSON (from a
    proxy, say) still gives one, its text cut short."""
    code, message, details = _error_fields(body, reason or f"HTTP {status}")
    cls = _BY_STATUS.get(status, ApiError)
    return cls(
        status,
        redact(code),
        redact(message),
        _redacted(details, redact),
        retry_after=parse_retry_after(retry_after),
    )


def _error_fields(body: bytes, fallback: str) -> tuple[str, str, Any]:
    try:
        error = json.loads(body)["error"]
        return str(error["code"]), str(error["message"]), error.get("details")
    except (ValueError, TypeError, KeyError, AttributeError):
        text = body.decode("utf-8", "replace").strip()[:MAX_UPSTREAM_TEXT]
        return "http_error", text or fallback, None


def _redacted(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(item, redact) for item in value]
    if isinstance(value, dict):
        return {redact(str(k)): _redacted(v, redact) for k, v in value.items()}
    return value


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
