"""The dispatcher's errors. Each carries its HTTP mapping; one middleware renders them.

    DispatcherError (500 internal)
    ├── InvalidRequestError (422 invalid_request)  one message per field in ``details``
    ├── UnauthorizedError (401 unauthorized)
    ├── NotFoundError (404 not_found)
    ├── RequestTimeoutError (408 request_timeout)  the body came too slowly
    ├── ConflictError (409 conflict)               same eval_id, different body
    ├── TooManyRequestsError (429)                 carries ``retry_after_seconds``
    │   ├── QueueFullError (429 queue_full)        the backend's queue
    │   └── TenantLimitError (429 tenant_limit)    a tenant's limit (``tenants.TenantLimits``)
    ├── BackendUnavailableError (503 backend_unavailable)
    └── TemplateError (raised at startup: the Job template is unusable; stops the process)

Library errors (redis, kubernetes, aiohttp client) are translated where they are caught and
chained with ``from``; they never reach handlers.
"""

from typing import Any

# Upstream text copied into a message is cut to this, so a huge API error cannot flood logs.
MAX_UPSTREAM_TEXT = 512


class DispatcherError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequestError(DispatcherError):
    status = 422
    code = "invalid_request"


class UnauthorizedError(DispatcherError):
    status = 401
    code = "unauthorized"


class NotFoundError(DispatcherError):
    status = 404
    code = "not_found"


class RequestTimeoutError(DispatcherError):
    status = 408
    code = "request_timeout"


class ConflictError(DispatcherError):
    status = 409
    code = "conflict"


class TooManyRequestsError(DispatcherError):
    """429: nothing was created; ``retry_after_seconds`` goes out as Retry-After."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, details={"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds


class QueueFullError(TooManyRequestsError):
    code = "queue_full"


class TenantLimitError(TooManyRequestsError):
    code = "tenant_limit"

    def __init__(self, message: str, *, retry_after_seconds: int, hold_seconds: float = 0) -> None:
        """``hold_seconds``: how long the answer stays true for certain (a rate limit's wait),
        so a dispatcher may give it again without asking Redis."""
        super().__init__(message, retry_after_seconds=retry_after_seconds)
        self.hold_seconds = hold_seconds


class BackendUnavailableError(DispatcherError):
    status = 503
    code = "backend_unavailable"


class TemplateError(DispatcherError):
    code = "template_error"


def upstream_text(text: object) -> str:
    s = str(text)
    return s if len(s) <= MAX_UPSTREAM_TEXT else s[:MAX_UPSTREAM_TEXT] + "…"
