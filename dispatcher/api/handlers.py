"""Request handlers: parse, call, respond. Errors are raised and rendered by the middleware."""

import asyncio
import logging
from typing import Any

import redis.exceptions
from aiohttp import web

from dispatcher import errors, metrics
from dispatcher.api import app_keys
from dispatcher.api.http import bodies, middlewares, queries
from dispatcher.api.schema import openapi, requests
from dispatcher.api.schema.responses import EvaluationList, ExecuteResponse
from dispatcher.api.streams import output_response
from dispatcher.api.submissions import Outcome
from dispatcher.store import output
from dispatcher.store.records import Status

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0
routes = web.RouteTableDef()


async def _submit(request: web.Request, spec: requests.Spec) -> Outcome:
    return await request.app[app_keys.SUBMITTER].submit(spec, middlewares.principal(request))


def _count_invalid(request: web.Request) -> None:
    request.app[app_keys.SUBMITTER].count("invalid", middlewares.principal(request).submits_as)


def _parse(request: web.Request, body: object, parse: Any) -> requests.Spec:
    try:
        spec: requests.Spec = parse(body, request.app[app_keys.SETTINGS])
    except errors.InvalidRequestError:
        _count_invalid(request)
        raise
    return spec


async def _body(request: web.Request) -> object:
    return await bodies.read_json(
        request, within=request.app[app_keys.SETTINGS].body_timeout_seconds
    )


def _target(request: web.Request) -> str:
    """The path's evaluation as the caller names it: a tenant's own ids only."""
    return middlewares.principal(request).qualify(request.match_info["eval_id"])


@routes.post("/v1/evaluations")
async def create_evaluation(request: web.Request) -> web.Response:
    request.app[app_keys.SUBMITTER].refuse_early(middlewares.principal(request))
    try:
        body = await _body(request)
    except errors.InvalidRequestError:
        _count_invalid(request)
        raise
    outcome = await _submit(request, _parse(request, body, requests.parse_evaluation))
    shown = outcome.record.public()
    eval_id = shown["eval_id"]
    return web.json_response(
        shown,
        status=201 if outcome.created else 200,
        headers={"Location": f"/v1/evaluations/{eval_id}"},
    )


@routes.get("/v1/evaluations")
async def list_evaluations(request: web.Request) -> web.Response:
    query = queries.list_query(request)
    page = await request.app[app_keys.STORE].indexes.listing(
        tenant=middlewares.principal(request).tenant,
        status=query.status,
        limit=query.limit,
        cursor=query.cursor,
    )
    body = EvaluationList(
        items=[r.public() for r in page.records], next_cursor=queries.next_cursor(page.next_cursor)
    )
    return web.json_response(body.model_dump(mode="json"))


@routes.get("/v1/evaluations/{eval_id}")
async def get_evaluation(request: web.Request) -> web.Response:
    record = await request.app[app_keys.STORE].require(_target(request))
    if record.status == Status.QUEUED:
        # The position moves as others start: the backend's current one, not the event's.
        position = await request.app[app_keys.BACKEND].queue_position(record.eval_id)
        if position is not None:
            record = record.model_copy(update={"queue_position": position})
    return web.json_response(record.public())


@routes.post("/v1/evaluations/{eval_id}/cancel")
@routes.delete("/v1/evaluations/{eval_id}")
async def cancel_evaluation(request: web.Request) -> web.Response:
    """Cancel: 202 with the record, which stays; the verified end follows on the evaluation's
    stream. ``DELETE`` is the original design's spelling of it, kept for its clients and
    marked deprecated in the schema (nothing is removed)."""
    record = await request.app[app_keys.SUBMITTER].cancel(_target(request))
    return web.json_response(record.public(), status=202)


@routes.get("/v1/evaluations/{eval_id}/events")
async def evaluation_events(request: web.Request) -> web.StreamResponse:
    who = middlewares.principal(request)
    limits = request.app[app_keys.SETTINGS].tenants.for_tenant(who.tenant)
    return await request.app[app_keys.EVENT_STREAM].respond(
        request, _target(request), tenant_max=limits.streams_max if limits else None
    )


@routes.get("/v1/evaluations/{eval_id}/output")
async def evaluation_output(request: web.Request) -> web.StreamResponse:
    eval_id = _target(request)
    which = request.query.get("stream")
    if which is not None and which not in output.STREAMS:
        raise errors.InvalidRequestError(
            "invalid query", details=[{"field": "stream", "message": "must be stdout or stderr"}]
        )
    await request.app[app_keys.STORE].require(eval_id)
    return await output_response.respond(request, request.app[app_keys.REDIS], eval_id, which)


@routes.post("/execute")
async def execute(request: web.Request) -> web.Response:
    """The original design's endpoint: same validation and idempotency, its own shapes."""
    request.app[app_keys.SUBMITTER].refuse_early(middlewares.principal(request))
    outcome = await _submit(request, _parse(request, await _body(request), requests.parse_execute))
    body = ExecuteResponse(
        eval_id=outcome.record.public()["eval_id"],
        job_name=outcome.record.job_name,
        message="Job created successfully" if outcome.created else "Job already exists",
    )
    return web.json_response(body.model_dump(mode="json"))


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    if request.app[app_keys.DRAINING].is_set():
        return web.json_response({"draining": True}, status=503)
    checks = {"redis": await _redis_ready(request), "backend": await _backend_ready(request)}
    return web.json_response(checks, status=200 if all(checks.values()) else 503)


async def _redis_ready(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            return bool(await request.app[app_keys.REDIS].ping())  # type: ignore[misc]
    except (TimeoutError, redis.exceptions.RedisError, OSError):
        return False


async def _backend_ready(request: web.Request) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            return await request.app[app_keys.BACKEND].ready()
    except Exception:
        log.warning("backend readiness check failed", exc_info=True)
        return False


@routes.get("/metrics")
async def prometheus_metrics(request: web.Request) -> web.Response:
    text = request.app[app_keys.REGISTRY].render()
    return web.Response(body=text.encode(), headers={"Content-Type": metrics.CONTENT_TYPE})


@routes.get("/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app[app_keys.SETTINGS]))
