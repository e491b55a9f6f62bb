"""Request handlers: parse, call, respond. Errors are raised and rendered by the middleware."""

import asyncio
import json
import logging
from typing import Any

import redis.exceptions
from aiohttp import web

from dispatcher import errors, metrics
from dispatcher.api import app_keys, openapi, requests
from dispatcher.api.responses import EvaluationList, ExecuteResponse
from dispatcher.api.submissions import Outcome
from dispatcher.store import output
from dispatcher.store.records import Status

log = logging.getLogger(__name__)

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500
READY_TIMEOUT_SECONDS = 2.0
routes = web.RouteTableDef()


async def read_json(request: web.Request) -> object:
    """The body as JSON; a wrong content type or malformed JSON is a 422 like any bad field."""
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise _bad_body(f"Content-Type must be application/json, not {request.content_type!r}")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad_body(f"malformed JSON: {e}") from None


def _bad_body(message: str) -> errors.InvalidRequestError:
    return errors.InvalidRequestError(message, details=[{"field": "body", "message": message}])


async def _submit(request: web.Request, spec: requests.Spec) -> Outcome:
    return await request.app[app_keys.SUBMITTER].submit(spec)


def _parse(request: web.Request, body: object, parse: Any) -> requests.Spec:
    try:
        spec: requests.Spec = parse(body, request.app[app_keys.SETTINGS])
    except errors.InvalidRequestError:
        request.app[app_keys.SUBMITTER].count("invalid")
        raise
    return spec


@routes.post("/v1/evaluations")
async def create_evaluation(request: web.Request) -> web.Response:
    try:
        body = await read_json(request)
    except errors.InvalidRequestError:
        request.app[app_keys.SUBMITTER].count("invalid")
        raise
    outcome = await _submit(request, _parse(request, body, requests.parse_evaluation))
    eval_id = outcome.record.eval_id
    return web.json_response(
        outcome.record.public(),
        status=201 if outcome.created else 200,
        headers={"Location": f"/v1/evaluations/{eval_id}"},
    )


@routes.get("/v1/evaluations")
async def list_evaluations(request: web.Request) -> web.Response:
    status, limit, problems = _list_query(request)
    if problems:
        raise errors.InvalidRequestError("invalid query", details=problems)
    page = await request.app[app_keys.STORE].listing(
        status=status, limit=limit, cursor=request.query.get("cursor") or None
    )
    body = EvaluationList(items=[r.public() for r in page.records], next_cursor=page.next_cursor)
    return web.json_response(body.model_dump(mode="json"))


def _list_query(request: web.Request) -> tuple[Status | None, int, list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    status: Status | None = None
    limit = LIST_LIMIT_DEFAULT
    raw_status = request.query.get("status")
    if raw_status:
        try:
            status = Status(raw_status)
        except ValueError:
            problems.append(
                {"field": "status", "message": f"must be one of {[s.value for s in Status]}"}
            )
    raw_limit = request.query.get("limit")
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
            problems.append(
                {"field": "limit", "message": f"must be an integer from 1 to {LIST_LIMIT_MAX}"}
            )
        else:
            limit = int(raw_limit)
    return status, limit, problems


@routes.get("/v1/evaluations/{eval_id}")
async def get_evaluation(request: web.Request) -> web.Response:
    record = await request.app[app_keys.STORE].require(request.match_info["eval_id"])
    return web.json_response(record.public())


@routes.delete("/v1/evaluations/{eval_id}")
async def cancel_evaluation(request: web.Request) -> web.Response:
    record = await request.app[app_keys.SUBMITTER].cancel(request.match_info["eval_id"])
    return web.json_response(record.public())


@routes.get("/v1/evaluations/{eval_id}/events")
async def evaluation_events(request: web.Request) -> web.StreamResponse:
    return await request.app[app_keys.EVENT_STREAM].respond(request, request.match_info["eval_id"])


@routes.get("/v1/evaluations/{eval_id}/output")
async def evaluation_output(request: web.Request) -> web.Response:
    eval_id = request.match_info["eval_id"]
    which = request.query.get("stream")
    if which is not None and which not in output.STREAMS:
        raise errors.InvalidRequestError(
            "invalid query", details=[{"field": "stream", "message": "must be stdout or stderr"}]
        )
    await request.app[app_keys.STORE].require(eval_id)
    captured = await output.read(request.app[app_keys.REDIS], eval_id)
    if which is not None:
        headers = {"X-Crucible-Truncated": "true" if captured.truncated else "false"}
        return web.Response(text=getattr(captured, which), headers=headers)
    return web.json_response(
        {"stdout": captured.stdout, "stderr": captured.stderr, "truncated": captured.truncated}
    )


@routes.post("/execute")
async def execute(request: web.Request) -> web.Response:
    """The original design's endpoint: same validation and idempotency, its own shapes."""
    outcome = await _submit(
        request, _parse(request, await read_json(request), requests.parse_execute)
    )
    body = ExecuteResponse(
        eval_id=outcome.record.eval_id,
        job_name=outcome.record.job_name,
        message="Job created successfully" if outcome.created else "Job already exists",
    )
    return web.json_response(body.model_dump(mode="json"))


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
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
