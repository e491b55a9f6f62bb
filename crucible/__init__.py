"""A typed client of crucible's HTTP API: ``Client`` (standard library only) and ``AsyncClient``
(aiohttp: ``pip install 'crucible[client]'``), with the same calls.

    with crucible.Client() as client:  # CRUCIBLE_URL, CRUCIBLE_TOKEN
        record = client.wait(client.submit("print(6 * 7)").eval_id)

``AsyncClient`` is imported on first use, so the sync client works where aiohttp is not
installed.
"""

from typing import TYPE_CHECKING, Any

from crucible.endpoint import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE
from crucible.errors import (
    ApiError,
    ConflictError,
    CrucibleError,
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    WaitTimeoutError,
)
from crucible.models import TERMINAL, Evaluation, Event, Output
from crucible.sync_client import Client

if TYPE_CHECKING:
    from crucible.async_client import AsyncClient

__all__ = [
    "DEFAULT_URL",
    "TERMINAL",
    "TOKEN_VARIABLE",
    "URL_VARIABLE",
    "ApiError",
    "AsyncClient",
    "Client",
    "ConflictError",
    "CrucibleError",
    "Evaluation",
    "Event",
    "InvalidRequestError",
    "NotFoundError",
    "Output",
    "ProtocolError",
    "RateLimitedError",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "WaitTimeoutError",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncClient":
        from crucible.async_client import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'crucible' has no attribute {name!r}")
