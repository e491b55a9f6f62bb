"""The HTTP middlewares, outermost first: request metrics, error rendering, bearer tokens."""

import hmac
import logging
import time
from collections.abc import Sequence

import redis.exceptions
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dispatcher import errors, metrics

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# Paths that check a credential of their own (the sidecars' per-evaluation tokens: api.ingest).
OWN_AUTH_PREFIXES = ("/ingest/",)


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details}}


def _json_error(status: int, code: str, message: str, details: object = None) -> web.Response:
    return web.json_response(error_body(code, message, details), status=status)


def route_name(request: web.Request) -> str:
    """The route's pattern (``/v1/evaluations/{eval_id}``), not the path: bounded labels."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(registry: metrics.Registry) -> Middleware:
    requests = registry.counter(
        "crucible_dispatcher_http_requests_total", "HTTP requests by route, method and status."
    )
    latency = registry.histogram(
        "crucible_dispatcher_http_request_duration_seconds",
        "Time to answer an HTTP request (event streams: until they end), by route.",
    )

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            route = route_name(request)
            requests.inc(route=route, method=request.method, status=str(status))
            latency.observe(time.perf_counter() - started, route=route)

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.DispatcherError as e:
        response = _json_error(e.status, e.code, e.message, e.details)
        if isinstance(e, errors.QueueFullError):
            response.headers["Retry-After"] = str(e.retry_after_seconds)
        if isinstance(e, errors.UnauthorizedError):
            response.headers["WWW-Authenticate"] = 'Bearer realm="crucible"'
        return response
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = e.reason.lower().replace(" ", "_")
        response = _json_error(e.status, code, e.reason)
        for name in ("Allow", "Retry-After"):
            if name in e.headers:
                response.headers[name] = e.headers[name]
        return response
    except Exception as e:
        return _unexpected(request, e)


def _unexpected(request: web.Request, error: Exception) -> web.Response:
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        log.warning("%s %s: redis unavailable: %s", request.method, request.path, error)
        return _unavailable("redis_unavailable", "the status store is unreachable; retry")
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        # Redis at maxmemory refuses writes: nothing was created, the client may retry.
        log.warning("%s %s: redis is full: %s", request.method, request.path, error)
        return _unavailable("redis_full", "the status store is full; retry later")
    log.error("%s %s failed", request.method, request.path, exc_info=error)
    return _json_error(500, "internal", "internal error; see the dispatcher's log")


def _unavailable(code: str, message: str) -> web.Response:
    response = _json_error(503, code, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def auth_middleware(tokens: Sequence[str]) -> Middleware:
    """Every path but the probes needs ``Authorization: Bearer <token>`` when tokens exist."""
    expected = [t.encode() for t in tokens]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            expected
            and request.path not in OPEN_PATHS
            and not request.path.startswith(OWN_AUTH_PREFIXES)
            and not _authorized(request, expected)
        ):
            raise errors.UnauthorizedError("a valid bearer token is required")
        return await handler(request)

    return middleware


def _authorized(request: web.Request, expected: list[bytes]) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    candidate = given.strip().encode()
    # Compare against every token, without stopping early: timing reveals nothing.
    matched = False
    for token in expected:
        matched |= hmac.compare_digest(candidate, token)
    return matched
