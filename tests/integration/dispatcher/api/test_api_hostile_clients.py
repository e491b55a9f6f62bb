"""Requests a hostile client makes get a clear 4xx, never a 500: absurd JSON, odd digits, forged
cursors and resume ids, a body cut short."""

import asyncio
import base64
import logging
from typing import Any

import pytest
from aiohttp import web

from dispatcher.api import app_keys
from dispatcher.api.app import create_app
from dispatcher.settings import DispatcherSettings
from tests import redisproc
from tests.integration.dispatcher.conftest import AppClient, FakeBackend, make_settings, wait_for
from wire import ingest

JSON = {"Content-Type": "application/json"}


async def body_problem(api: AppClient, path: str, body: str) -> str:
    response = await api.post(path, data=body, headers=JSON)
    assert response.status == 422, await response.text()
    details = (await response.json())["error"]["details"]
    assert [d["field"] for d in details] == ["body"]
    message: str = details[0]["message"]
    return message


@pytest.mark.parametrize("path", ["/v1/evaluations", "/execute"])
async def test_a_body_nested_100000_deep_is_422(
    api: AppClient, fake_backend: FakeBackend, path: str
):
    for body in ("[" * 100_000 + "]" * 100_000, '{"code": ' + "[" * 100_000 + "]" * 100_000 + "}"):
        assert "nested too deeply" in await body_problem(api, path, body)
    assert fake_backend.submitted == []


@pytest.mark.parametrize(
    "template",
    [
        '{"code": "1", "timeout_seconds": %s}',
        '{"code": "1", "labels": {"team": %s}}',
        '{"code": "1", "env": {"A": [%s]}}',
        '{"code": "1", "resources": {"memory": -%s}}',
        "%s",
    ],
)
async def test_a_5000_digit_integer_anywhere_is_422(api: AppClient, template: str):
    assert "digits" in await body_problem(api, "/v1/evaluations", template % ("9" * 5000))
    assert "digits" in await body_problem(api, "/execute", template % ("9" * 5000))


async def test_nan_and_infinity_are_not_json(api: AppClient):
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"code": "1", "timeout_seconds": ' + constant + "}"
        assert "not JSON" in await body_problem(api, "/v1/evaluations", body)


@pytest.mark.parametrize("limit", ["²", "١٢", "1.5", "", "+3", "0", "501"])
async def test_limit_must_be_ascii_digits_within_bounds(api: AppClient, limit: str):
    response = await api.get("/v1/evaluations", params={"limit": limit})
    assert response.status == 422
    assert [d["field"] for d in (await response.json())["error"]["details"]] == ["limit"]


@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"nan x").decode().rstrip("="),  # the old format, score NaN
        "nan~x",
        "inf~x",
        "1e400~x",
        "1.5~",
        "1.5~a b",
        "",
        "%%%",
    ],
)
async def test_a_malformed_cursor_is_422(api: AppClient, cursor: str):
    await api.post("/v1/evaluations", json={"code": "1"})
    response = await api.get("/v1/evaluations", params={"cursor": cursor})
    assert response.status == 422
    assert [d["field"] for d in (await response.json())["error"]["details"]] == ["cursor"]


async def test_any_well_formed_cursor_is_a_position(api: AppClient):
    for i in range(3):
        await api.post("/v1/evaluations", json={"code": "1", "eval_id": f"p{i}"})
    first = await (await api.get("/v1/evaluations", params={"limit": "1"})).json()
    assert first["next_cursor"].endswith("~p2")
    for cursor in (first["next_cursor"], "0.0~zzz", "9999999999999999.99~a", "1~A-b.c_d"):
        response = await api.get("/v1/evaluations", params={"cursor": cursor})
        assert response.status == 200, cursor


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ("99999999999999999999999", None),
        ("18446744073709551616-0", None),
        ("1-18446744073709551616", None),
        (None, "99999999999999999999999"),
        ("1-0", "x"),
        ("", None),
    ],
)
async def test_a_resume_id_beyond_a_stream_id_is_422_before_the_stream_starts(
    api: AppClient, header: str | None, query: str | None
):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "sse"})
    headers = {} if header is None else {"Last-Event-ID": header}
    params = {} if query is None else {"last_event_id": query}
    response = await api.get("/v1/evaluations/sse/events", headers=headers, params=params)
    assert response.status == 422
    assert response.content_type == "application/json"
    assert (await response.json())["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("handler_cancellation", [False, True])
async def test_a_client_gone_mid_body_is_no_500(
    settings: DispatcherSettings,
    fake_backend: FakeBackend,
    redis_client: Any,
    caplog: pytest.LogCaptureFixture,
    handler_cancellation: bool,
):
    """``web.run_app`` (``crucible serve``) lets the handler see the reset; a server that
    cancels handlers instead cancels it. Either way: counted as 499, no error, no traceback."""
    caplog.set_level(logging.INFO)
    runner = web.AppRunner(
        create_app(settings, fake_backend, redis_client), handler_cancellation=handler_cancellation
    )
    await runner.setup()
    port = redisproc.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    caplog.clear()  # the start's own warnings (no tokens) are not the request's
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/evaluations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"code": "print('
        )
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        await writer.wait_closed()
        registry = runner.app[app_keys.REGISTRY]

        async def counted() -> bool:
            return 'route="/v1/evaluations",status="' in registry.render()

        await wait_for(counted, within=5, what="the request counted")
    finally:
        await runner.cleanup()
    metrics = registry.render()
    assert 'route="/v1/evaluations",status="499"' in metrics
    assert 'status="500"' not in metrics
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    if not handler_cancellation:
        assert any("client disconnected" in r.getMessage() for r in caplog.records)
    assert fake_backend.submitted == []


@pytest.mark.parametrize("path", ["/v1/evaluations", "/ingest/v1/evaluations/slow/events"])
async def test_a_body_trickled_in_is_cut_off_with_408(
    redis_url: str, fake_backend: FakeBackend, redis_client: Any, path: str
):
    """A slow-loris body holds its connection no longer than body_timeout_seconds."""
    settings = make_settings(redis_url, body_timeout_seconds=0.5)
    runner = web.AppRunner(create_app(settings, fake_backend, redis_client))
    await runner.setup()
    port = redisproc.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        # The sidecars' route checks its credential before it reads: give it a good one.
        token = ingest.eval_token(settings.ingest_key_bytes(), "slow")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 1000\r\n\r\n{{".encode()
        )
        await writer.drain()
        started = asyncio.get_running_loop().time()

        async def trickle() -> None:
            for _ in range(40):
                await asyncio.sleep(0.1)
                writer.write(b" ")

        trickling = asyncio.create_task(trickle())
        status_line = await asyncio.wait_for(reader.readline(), 5)
        waited = asyncio.get_running_loop().time() - started
        trickling.cancel()
        writer.close()
        await writer.wait_closed()
    finally:
        await runner.cleanup()
    assert status_line.split()[1] == b"408", status_line
    assert 0.4 < waited < 2.0
    assert fake_backend.submitted == []
