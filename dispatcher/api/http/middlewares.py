"""The HTTP middlewares, outermost first: request metrics, error rendering, bearer tokens."""

import asyncio
import logging
import time

import redis.exceptions
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dispatcher import errors, metrics, tenants
from dispatcher.api.ui import routes as ui_routes

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1
# What the access log and the metrics show for a request whose client left before the answer
# (nginx's convention): it is not the dispatcher's failure, and nobody reads the response.
CLIENT_CLOSED_REQUEST = 499

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# Paths that check a credential of their own (the sidecars' per-evaluation tokens: api.ingest).
OWN_AUTH_PREFIXES = ("/ingest/",)
PRINCIPAL = web.RequestKey("principal", tenants.Principal)


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
        except asyncio.CancelledError:
            # A server that cancels handlers when the client leaves (handler_cancellation).
            if _client_gone(request):
                status = CLIENT_CLOSED_REQUEST
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
        if isinstance(e, errors.TooManyRequestsError):
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
    if isinstance(error, ConnectionResetError) and _client_gone(request):
        # Not a failure of ours (a body cut short, typically): no traceback, no 500.
        log.info("%s %s: the client disconnected before the answer", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        log.warning("%s %s: redis unavailable: %s", request.method, request.path, error)
        return _unavailable("redis_unavailable", "the status store is unreachable; retry")
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        # Redis at maxmemory refuses writes: nothing was created, the client may retry.
        log.warning("%s %s: redis is full: %s", request.method, request.path, error)
        return _unavailable("redis_full", "the status store is full; retry later")
    log.error("%s %s failed", request.method, request.path, exc_info=error)
    return _json_error(500, "internal", "internal error; see the dispatcher's log")


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _unavailable(code: str, message: str) -> web.Response:
    response = _json_error(503, code, message)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def auth_middleware(table: tenants.TokenTable) -> Middleware:
    """Every path but the probes needs ``Authorization: Bearer <token>`` when tokens exist; the
    token's principal (a tenant, or an operator) is put on the request (``principal``)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        who = tenants.OPERATOR
        if (
            table
            and request.path not in OPEN_PATHS
            and not request.path.startswith(OWN_AUTH_PREFIXES)
            # The web page's routes (matched, not a path prefix): it holds no data.
            and route_name(request) not in ui_routes.PUBLIC_ROUTES
        ):
            found = _bearer(request, table)
            if found is None:
                raise errors.UnauthorizedError("a valid bearer token is required")
            who = found
        request[PRINCIPAL] = who
        return await handler(request)

    return middleware


def principal(request: web.Request) -> tenants.Principal:
    who: tenants.Principal = request.get(PRINCIPAL, tenants.OPERATOR)
    return who


def _bearer(request: web.Request, table: tenants.TokenTable) -> tenants.Principal | None:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return table.find(given.strip())
