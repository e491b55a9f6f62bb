"""Where sidecars hand in their evaluation's events (``wire.ingest`` is the contract).

A pod holds no Redis credential. Its sidecar holds one HMAC token, good for its own evaluation
only; everything it sends is checked here before ``publish.lua`` stores it, and counted against
the evaluation's byte budget there, so a pod cannot write another evaluation's record, stream or
legacy messages, the global stream beyond its own status events, or more than its budget.
"""

import asyncio
import dataclasses
import secrets
import time
from collections.abc import Mapping

import pydantic
from aiohttp import web

from dispatcher import errors, metrics
from dispatcher.backends import base
from dispatcher.store import publish
from dispatcher.store.store import Store
from wire import events, ingest, ingest_route, limits, sidecar_env

routes = web.RouteTableDef()
PATH_PREFIX = "/ingest/"
SIDECAR_ENV_URL = sidecar_env.variable("ingest_url")
SIDECAR_ENV_TOKEN = sidecar_env.variable("ingest_token")
# Retry-After (seconds) for a sidecar when Redis is away or full.
RETRY_AFTER_SECONDS = 1


@dataclasses.dataclass(frozen=True)
class SidecarLink:
    """What a sidecar is told to reach the dispatcher: the URL and its evaluation's token."""

    url: str
    key: bytes = dataclasses.field(repr=False)

    def env(self, eval_id: str) -> Mapping[str, str]:
        return sidecar_env.ingest_env(self.url, ingest.eval_token(self.key, eval_id))


def new_key() -> bytes:
    """A key for one dispatcher process when none is configured (several need a shared one)."""
    return secrets.token_bytes(32)


INGEST_KEY = web.AppKey("ingest_key", bytes)
PUBLISHER = web.AppKey("ingest_publisher", publish.Publisher)
STORE = web.AppKey("ingest_store", Store)
BODY_TIMEOUT = web.AppKey("ingest_body_timeout", float)
EVENT_AGES = web.AppKey("ingest_event_ages", metrics.Histogram)


def _authorized(request: web.Request) -> str:
    """The path's evaluation, if the request holds its token."""
    eval_id = request.match_info["eval_id"]
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    key = request.app[INGEST_KEY]
    if scheme.lower() != "bearer" or not ingest.token_matches(key, eval_id, presented.strip()):
        raise errors.UnauthorizedError("not a credential of this evaluation")
    return eval_id


@routes.get(ingest_route.CODE_ROUTE)
async def evaluation_code(request: web.Request) -> web.Response:
    """The program of a ``code`` evaluation, for its sidecar to put where the command reads it."""
    eval_id = _authorized(request)
    record = await request.app[STORE].get(eval_id)
    code = None if record is None else base.code_of(record.command)
    if code is None:
        raise errors.NotFoundError("this evaluation has no program to fetch")
    return web.Response(text=code, content_type="text/plain")


@routes.post(ingest.ROUTE)
async def ingest_events(request: web.Request) -> web.Response:
    eval_id = _authorized(request)
    batch = _parse(await _body(request))
    checked = [(_checked(eval_id, item.event), ingest.TOKEN_PREFIX + item.token) for item in batch]
    now, ages = time.time(), request.app[EVENT_AGES]
    for event, _ in checked:
        ages.observe(now - event.ts, at=metrics.AGE_AT_INGEST)
    published = await request.app[PUBLISHER].publish_many(checked, budget=True)
    results = [
        {"seq": p.seq, "id": p.stream_id, "duplicate": p.duplicate, "dropped": p.dropped}
        for p in published
    ]
    return web.json_response({"results": results})


async def _body(request: web.Request) -> bytes:
    """The body, refused once it grows past the limit (before it is all in memory)."""
    too_large = _invalid("body", f"larger than {limits.INGEST_BODY_MAX_BYTES} bytes")
    if (request.content_length or 0) > limits.INGEST_BODY_MAX_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    within = request.app[BODY_TIMEOUT]
    try:
        async with asyncio.timeout(within):  # a pod trickling a body in holds nothing long
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limits.INGEST_BODY_MAX_BYTES:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise errors.RequestTimeoutError(f"the body did not arrive within {within:g}s") from None
    return b"".join(chunks)


def _parse(raw: bytes) -> list[ingest.Item]:
    try:
        return ingest.Batch.model_validate_json(raw).events
    except pydantic.ValidationError as e:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
            for err in e.errors(include_url=False, include_input=False)[:20]
        ]
        raise errors.InvalidRequestError("invalid batch", details=details) from None


def _checked(eval_id: str, event: events.Event) -> events.Event:
    """The event as the dispatcher will store it: only what a sidecar may say, about its own
    evaluation, never verified."""
    if event.eval_id != eval_id:
        raise _invalid("event.eval_id", "not the evaluation of this credential")
    if event.source != "sidecar":
        raise _invalid("event.source", "must be 'sidecar'")
    if event.type not in ingest.SIDECAR_TYPES:
        raise _invalid("event.type", f"a sidecar may not publish {event.type.value!r}")
    if event.verified:
        raise _invalid("event.verified", "only the dispatcher verifies")
    return event


def _invalid(field: str, message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, details=[{"field": field, "message": message}])
