"""The aiohttp application: ``create_app(settings, backend, redis)``.

The caller owns the Redis client (and closes it); the application owns the backend's lifetime
(``start``/``close`` in a cleanup context) and the consumer task that keeps records current.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import redis.asyncio
from aiohttp import web

from dispatcher import metrics, tenants
from dispatcher.api import app_keys, handlers, ingest, service_config
from dispatcher.api.http import middlewares
from dispatcher.api.streams import global_events
from dispatcher.api.streams.sse import EventStream
from dispatcher.api.submissions import Submitter
from dispatcher.api.ui import routes as ui_routes
from dispatcher.backends.base import Backend
from dispatcher.settings import DispatcherSettings
from dispatcher.store import connect, publish
from dispatcher.store.consumer import Consumer
from dispatcher.store.store import Store

log = logging.getLogger(__name__)

# JSON can spell one byte of code as six characters (\u0000); leave room for the other fields.
_BODY_OVERHEAD_BYTES = 2**20
_CONSUMER_KEY = web.AppKey("consumer", Consumer)


def create_app(
    settings: DispatcherSettings,
    backend: Backend,
    redis_client: redis.asyncio.Redis,
    *,
    registry: metrics.Registry | None = None,
    stream_client: redis.asyncio.Redis | None = None,
) -> web.Application:
    """``stream_client``: the event streams' own client (they block in reads); default: the
    API's."""
    registry = registry or metrics.Registry()
    table = tenants.TokenTable(settings.tokens())
    app = web.Application(
        middlewares=[
            middlewares.metrics_middleware(registry),
            middlewares.error_middleware,
            middlewares.auth_middleware(table),
        ],
        client_max_size=settings.limits.code_max_bytes * 6 + _BODY_OVERHEAD_BYTES,
    )
    store = Store(redis_client, ttl_seconds=settings.record_ttl_seconds)
    stopping = asyncio.Event()
    app[app_keys.SETTINGS] = settings
    app[app_keys.REDIS] = redis_client
    app[app_keys.BACKEND] = backend
    app[app_keys.STORE] = store
    app[app_keys.REGISTRY] = registry
    app[app_keys.STOPPING] = stopping
    app[app_keys.DRAINING] = asyncio.Event()
    app[app_keys.SUBMITTER] = Submitter(
        backend=backend,
        store=store,
        publisher=publish.Publisher(redis_client, settings.streams),
        registry=registry,
        tenant_limits=settings.tenants,
    )
    event_ages = metrics.event_ages(registry)
    app[app_keys.EVENT_STREAM] = EventStream(
        stream_client or redis_client,
        store,
        heartbeat_seconds=settings.sse_heartbeat_seconds,
        stopping=stopping,
        verify_wait_seconds=settings.sse_verify_wait_seconds,
        streams_max=settings.sse_streams_max,
        ages=event_ages,
    )
    app[_CONSUMER_KEY] = Consumer(
        redis_client,
        store,
        settings.consumer,
        registry=registry,
        on_end=backend.evaluation_ended,
    )
    app[ingest.INGEST_KEY] = settings.ingest_key_bytes()
    app[ingest.PUBLISHER] = publish.Publisher(redis_client, settings.streams)
    app[ingest.STORE] = store
    app[ingest.BODY_TIMEOUT] = settings.body_timeout_seconds
    app[ingest.EVENT_AGES] = event_ages
    app.add_routes(handlers.routes)
    app.add_routes(ingest.routes)
    app.add_routes([*ui_routes.routes, *service_config.routes])  # the web page (docs/ui.md)
    global_events.setup(app)  # GET /v1/events
    app.cleanup_ctx.append(_backend_lifetime)
    app.cleanup_ctx.append(_consumer_lifetime)
    app.on_shutdown.append(_end_event_streams)
    app.on_cleanup.append(_close_event_streams)
    _register_load_gauge(registry, backend)
    _register_leader_gauge(registry, backend)
    if not table:
        log.warning(
            "no API tokens configured: anyone who can reach %s:%s can run code "
            "(allowed on loopback; set CRUCIBLE_API_TOKENS to require a bearer token)",
            settings.host,
            settings.port,
        )
    return app


async def _backend_lifetime(app: web.Application) -> AsyncIterator[None]:
    backend = app[app_keys.BACKEND]
    await connect.initialized(app[app_keys.REDIS])  # before the backend's tasks share it
    await backend.start()
    try:
        yield
    finally:
        await backend.close()


async def _consumer_lifetime(app: web.Application) -> AsyncIterator[None]:
    consumer = app[_CONSUMER_KEY]
    # Fails the start if Redis is unreachable, rather than serving without a status store.
    await consumer.ensure_group()
    task = asyncio.create_task(consumer.run(), name=f"consumer {consumer.name}")
    yield
    await consumer.stop(task)


async def _end_event_streams(app: web.Application) -> None:
    app[app_keys.STOPPING].set()


async def _close_event_streams(app: web.Application) -> None:
    await app[app_keys.EVENT_STREAM].close()


def _register_load_gauge(registry: metrics.Registry, backend: Backend) -> None:
    """Backends that count their work (``queue_depth``, ``running``) get a gauge."""
    if not all(isinstance(getattr(backend, n, None), int) for n in ("queue_depth", "running")):
        return

    def read() -> Mapping[metrics.Labels, float]:
        return {
            (("state", "queued"),): getattr(backend, "queue_depth"),  # noqa: B009
            (("state", "running"),): getattr(backend, "running"),  # noqa: B009
        }

    registry.gauge(
        "crucible_dispatcher_backend_evaluations",
        "Evaluations the backend holds, by state (queued: waiting for a slot).",
        read,
    )


def _register_leader_gauge(registry: metrics.Registry, backend: Backend) -> None:
    """Backends whose replicas elect one (``is_leader``) say whether this one leads."""
    if not isinstance(getattr(backend, "is_leader", None), bool):
        return
    registry.gauge(
        "crucible_dispatcher_leader",
        "1 on the replica that holds the reconciler's Lease, else 0.",
        lambda: {(): float(getattr(backend, "is_leader"))},  # noqa: B009
    )
