"""Bearer tokens, probes, metrics and the OpenAPI document."""

import re
from typing import Any

import pytest

from dispatcher.api.app import create_app
from tests.integration.dispatcher.conftest import AppClient, FakeBackend, make_settings


@pytest.fixture
async def secured(
    redis_client: Any, aiohttp_client: Any, redis_url: str, tmp_path: Any, fake_backend: FakeBackend
) -> AppClient:
    token_file = tmp_path / "tokens"
    token_file.write_text("from-file\n\n")
    settings = make_settings(redis_url, api_tokens=["s3cret"], api_tokens_file=token_file)
    client: AppClient = await aiohttp_client(create_app(settings, fake_backend, redis_client))
    return client


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic s3cret", "Bearer", "s3cret", "Bearer s3cret2"]
)
async def test_requests_without_a_valid_token_are_401(secured: AppClient, authorization: Any):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [
        ("GET", "/v1/evaluations"),
        ("POST", "/v1/evaluations"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/execute"),
    ]:
        response = await secured.request(method, path, headers=headers, json={"code": "1"})
        assert response.status == 401, (method, path)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("token", ["s3cret", "from-file"])
async def test_configured_and_file_tokens_are_accepted(secured: AppClient, token: str):
    headers = {"Authorization": f"Bearer {token}"}
    response = await secured.post("/v1/evaluations", json={"code": "1"}, headers=headers)
    assert response.status == 201


async def test_probes_need_no_token(secured: AppClient, fake_backend: FakeBackend):
    assert (await secured.get("/healthz")).status == 200
    ready = await secured.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"redis": True, "backend": True}
    fake_backend.is_ready = False
    not_ready = await secured.get("/readyz")
    assert not_ready.status == 503
    assert await not_ready.json() == {"redis": True, "backend": False}


async def test_unknown_route_and_wrong_method_are_json_errors(api: AppClient):
    missing = await api.get("/v2/nothing")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    wrong = await api.put("/v1/evaluations")
    assert wrong.status == 405
    assert "Allow" in wrong.headers


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_]+="(?:[^"\\]|\\.)*",?)*\})? (\S+)$')


def parse_metrics(text: str) -> dict[str, list[str]]:
    """Check every line against the text format; samples by metric name."""
    samples: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        float(match.group(4).replace("+Inf", "inf"))
        base = re.sub(r"_(bucket|sum|count)$", "", match.group(1))
        assert base in types or match.group(1) in types, line
        samples.setdefault(match.group(1), []).append(line)
    return samples


async def test_metrics_are_prometheus_text_with_submissions_and_requests(api: AppClient):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "m1"})
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "m1"})
    await api.post("/v1/evaluations", json={"code": 5})
    response = await api.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_metrics(await response.text())
    submissions = "\n".join(samples["crucible_dispatcher_submissions_total"])
    assert 'outcome="created",tenant=""} 1' in submissions
    assert 'outcome="duplicate",tenant=""} 1' in submissions
    assert 'outcome="invalid",tenant=""} 1' in submissions
    requests = "\n".join(samples["crucible_dispatcher_http_requests_total"])
    assert 'route="/v1/evaluations"' in requests
    assert 'status="422"' in requests
    assert any(
        'le="+Inf"' in s
        for s in samples["crucible_dispatcher_http_request_duration_seconds_bucket"]
    )


async def test_openapi_document_covers_every_route(api: AppClient):
    document = await (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {
        (m, p) for p, item in document["paths"].items() for m in item if m != "parameters"
    }
    assert routes == documented
    schemas = document["components"]["schemas"]
    assert {"EvaluationRequest", "ExecuteRequest", "Record", "ErrorBody"} <= set(schemas)
    assert "request_digest" not in schemas["Record"]["properties"]
    request = schemas["EvaluationRequest"]
    assert request["additionalProperties"] is False
    assert {"code", "command", "resources", "env", "labels"} <= set(request["properties"])
    # Every $ref points at a schema that exists.
    text = str(document)
    for ref in re.findall(r"#/components/schemas/(\w+)", text):
        assert ref in schemas
