"""``GET /v1/events``: the status events of the caller's evaluations, from the global stream.

The global stream (on a Redis Cluster, one per partition) carries every evaluation's status events
(accepted ... the verified end; no output): a tenant sees those of its own evaluations, an
operator all, filtered as ``api.streams.sse`` filters one evaluation's stream (ids shown as the
tenant names them, ``tenant`` beside them). Two ways to read it, by the request's ``Accept``:

- ``text/event-stream``: Server-Sent Events. With ``Last-Event-ID`` (or ``?last_event_id=``),
  the events after it first; then live, until the client leaves or the dispatcher stops. The
  web page's list follows this. One Redis reader serves every such client
  (``api.streams.event_hub``).
- anything else: JSON, at once: ``{"events": [{"id", "event"}], "last_event_id"}``, at most
  ``limit`` events after ``last_event_id``. Without one, no events, and ``last_event_id`` is where
  the stream is now: a client takes it, loads the list, then follows from it, missing nothing.

An event's id is the position after it (``event_hub``: an entry id, or one per partition).
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher import errors
from dispatcher.api import app_keys
from dispatcher.api.http import middlewares, queries
from dispatcher.api.streams import event_hub, sse
from wire import tenancy

EVENTS_LIMIT_DEFAULT = 100
EVENTS_LIMIT_MAX = 500
# Entries scanned for a tenant's events in one JSON answer (others' are skipped): bounded work.
SCAN_MAX = 5000
_CHUNK = 500
HUB = web.AppKey("event_hub", event_hub.Hub)
_FULL_RETRY_AFTER_SECONDS = 5
_STREAMS = web.AppKey("global_streams", dict[str, int])
_TOTAL = " total"

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    app[HUB] = event_hub.Hub(app[app_keys.REDIS])
    app[_STREAMS] = {}
    app.add_routes(routes)
    app.cleanup_ctx.append(_hub_lifetime)


async def _hub_lifetime(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[HUB].close()


@routes.get("/v1/events")
async def global_events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    resumed = queries.resume_id(request, partitions=len(hub.streams))
    after = None if resumed is None else event_hub.split(resumed)
    limit = _limit(request)
    tenant = middlewares.principal(request).tenant
    if "text/event-stream" in request.headers.get("Accept", ""):
        return await _stream(request, tenant, after)
    if after is None:
        return web.json_response(
            {"events": [], "last_event_id": event_hub.encode(await hub.head())}
        )
    found, last = await _scan(request, tenant, after, limit)
    body = {
        "events": [{"id": i, "event": e} for i, e in found],
        "last_event_id": event_hub.encode(last),
    }
    return web.json_response(body)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return EVENTS_LIMIT_DEFAULT
    if raw.isascii() and raw.isdigit() and len(raw) <= 9 and 1 <= int(raw) <= EVENTS_LIMIT_MAX:
        return int(raw)
    raise errors.InvalidRequestError(
        "invalid query",
        details=[{"field": "limit", "message": f"must be an integer from 1 to {EVENTS_LIMIT_MAX}"}],
    )


async def _scan(
    request: web.Request,
    tenant: str | None,
    after: event_hub.Position,
    limit: int,
    scan_max: int = SCAN_MAX,
) -> tuple[list[event_hub.Item], event_hub.Position]:
    """Up to ``limit`` visible events after ``after``, and the position scanned up to. The
    partitions' streams are merged in id order: a page goes no further than the first id a
    partition read in full has not reached (its next entries may come before the others')."""
    client = request.app[app_keys.REDIS]
    streams = request.app[HUB].streams
    found: list[event_hub.Item] = []
    position, scanned = [*after], 0
    while len(found) < limit and scanned < scan_max:
        chunk = min(_CHUNK, scan_max - scanned)
        async with client.pipeline(transaction=False) as pipe:
            for stream, at in zip(streams, position, strict=True):
                pipe.xrange(stream, min="(" + at, count=chunk)
            reads = await pipe.execute()
        full = [event_hub.id_key(e[-1][0].decode()) for e in reads if len(e) == chunk]
        horizon = min(full) if full else None
        merged = sorted(
            (event_hub.id_key(entry[0].decode()), partition, entry)
            for partition, entries in enumerate(reads)
            for entry in entries
        )
        for key, partition, entry in merged:
            if (horizon is not None and key > horizon) or len(found) == limit:
                break
            entry_id, event = event_hub.decode(entry)
            event_hub.advance(position, partition, entry_id)
            scanned += 1
            if event_hub.visible(event, tenant):
                found.append((event_hub.encode(position), tenancy.present(event)))
        if horizon is None:
            break
    return found, position


async def _stream(
    request: web.Request, tenant: str | None, after: event_hub.Position | None
) -> web.StreamResponse:
    settings = request.app[app_keys.SETTINGS]
    limits = settings.tenants.for_tenant(tenant)
    slots = request.app[_STREAMS]
    key = tenant or ""
    if slots.get(_TOTAL, 0) >= settings.sse_streams_max:
        raise errors.TooManyRequestsError(
            f"this dispatcher holds {settings.sse_streams_max} event streams, its limit",
            retry_after_seconds=_FULL_RETRY_AFTER_SECONDS,
        )
    if limits and limits.streams_max is not None and slots.get(key, 0) >= limits.streams_max:
        raise errors.TenantLimitError(
            f"the tenant holds {limits.streams_max} event streams open here, its limit",
            retry_after_seconds=_FULL_RETRY_AFTER_SECONDS,
        )
    slots[key] = slots.get(key, 0) + 1
    slots[_TOTAL] = slots.get(_TOTAL, 0) + 1
    try:
        async with request.app[HUB].subscribe(tenant) as sub:
            response = web.StreamResponse(headers=sse.HEADERS)
            await response.prepare(request)
            with contextlib.suppress(ConnectionResetError):
                await _send_all(request, response, sub, tenant, after)
            return response
    finally:
        slots[key] -= 1
        slots[_TOTAL] -= 1


async def _send_all(
    request: web.Request,
    response: web.StreamResponse,
    sub: event_hub.Subscription,
    tenant: str | None,
    after: event_hub.Position | None,
) -> None:
    await response.write(b"retry: 1000\n\n")
    position = [*sub.start] if after is None else [*after]
    if after is not None:
        while True:  # the replay, in pages
            found, scanned = await _scan(request, tenant, position, EVENTS_LIMIT_MAX)
            for item in found:
                await response.write(_message(item))
            if scanned == position:
                break
            position = scanned
    heartbeat = request.app[app_keys.SETTINGS].sse_heartbeat_seconds
    stopping = request.app[app_keys.STOPPING]
    while not stopping.is_set():
        live = await _next(sub, heartbeat, stopping)
        if live is None:
            if sub.dropped:
                return
            await response.write(b": heartbeat\n\n")
            continue
        partition, entry_id, event = live
        if event_hub.advance(position, partition, entry_id):  # not replayed already
            await response.write(_message((event_hub.encode(position), event)))


async def _next(
    sub: event_hub.Subscription, idle_seconds: float, stopping: asyncio.Event
) -> event_hub.Entry | None:
    """The next entry; None after ``idle_seconds`` idle, when dropped or when the server stops."""
    if not sub.queue.empty():
        return sub.queue.get_nowait()
    get = asyncio.ensure_future(sub.queue.get())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({get, stop}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if not get.done():
        get.cancel()
        return None
    return get.result()


def _message(item: event_hub.Item) -> bytes:
    entry_id, event = item
    kind = str(event.get("type", "message"))
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        entry_id.encode(),
        kind.encode(),
        data.encode("utf-8", "backslashreplace"),
    )
