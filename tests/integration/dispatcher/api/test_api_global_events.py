"""GET /v1/events (the caller's status events from the global stream: JSON pages, or SSE that
replays from Last-Event-ID then follows live), GET /v1/config, and the web page's routes: who
may read what, on a real Redis."""

import asyncio
import json
import re
from typing import Any

import pytest

from dispatcher.api.app import create_app
from dispatcher.api.streams import event_hub, global_events
from dispatcher.api.ui import routes as ui_routes
from tests.integration.dispatcher.conftest import AppClient, FakeBackend, make_settings, publish
from tests.redis_mode import start_of_global_stream

START = start_of_global_stream()

TOKENS = ["acme:acme-token-0123456789", "globex:globex-token-0123456789", "operator-token-01234"]
ACME = {"Authorization": "Bearer acme-token-0123456789"}
GLOBEX = {"Authorization": "Bearer globex-token-0123456789"}
OPERATOR = {"Authorization": "Bearer operator-token-01234"}
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
async def api(
    redis_client: Any, aiohttp_client: Any, redis_url: str, fake_backend: FakeBackend
) -> AppClient:
    settings = make_settings(redis_url, api_tokens=TOKENS, images={"python": "py:1", "r": "r:4"})
    client: AppClient = await aiohttp_client(create_app(settings, fake_backend, redis_client))
    return client


async def _submit(api: AppClient, headers: dict[str, str], eval_id: str) -> None:
    body = {"eval_id": eval_id, "code": "print(1)"}
    response = await api.post("/v1/evaluations", json=body, headers=headers)
    assert response.status == 201, await response.text()


async def _page(api: AppClient, headers: dict[str, str], after: str, **query: str) -> Any:
    response = await api.get(
        "/v1/events", params={"last_event_id": after, **query}, headers=headers
    )
    assert response.status == 200, await response.text()
    return await response.json()


class Messages:
    """Reads SSE messages off a live response, one at a time."""

    def __init__(self, response: Any) -> None:
        self._response = response

    async def next(self, within: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            lines: dict[str, str] = {}
            while True:
                line = (await self._response.content.readline()).decode().rstrip("\n")
                if line == "":
                    if "data" in lines:
                        return {**lines, "data": json.loads(lines["data"])}
                    lines = {}
                elif not line.startswith(":") and ": " in line:
                    name, value = line.split(": ", 1)
                    lines[name] = value


async def test_json_pages_show_a_tenant_only_its_own_events(api: AppClient, redis_client: Any):
    head = (await _page(api, ACME, START))["last_event_id"]
    start = (await (await api.get("/v1/events", headers=ACME)).json())["last_event_id"]
    assert start == head  # without an id: no events, the stream's end
    await _submit(api, ACME, "a-1")
    await _submit(api, GLOBEX, "g-1")
    await _submit(api, GLOBEX, "a-1")  # the same id, another tenant's
    await publish(redis_client, "acme~a-1", "running")
    await publish(redis_client, "globex~g-1", "completed", exit_code=0, verified=True)

    acme = await _page(api, ACME, start)
    seen = [
        (e["event"]["eval_id"], e["event"]["tenant"], e["event"]["type"]) for e in acme["events"]
    ]
    assert seen == [("a-1", "acme", "accepted"), ("a-1", "acme", "running")]
    globex = await _page(api, GLOBEX, start)
    assert {e["event"]["tenant"] for e in globex["events"]} == {"globex"}
    assert [e["event"]["type"] for e in globex["events"]] == ["accepted", "accepted", "completed"]
    everyone = await _page(api, OPERATOR, start)
    assert len(everyone["events"]) == 5
    # Scanned to the end: nothing after it, and the same id to continue from.
    after = await _page(api, ACME, acme["last_event_id"])
    assert after["events"] == []


async def test_json_pages_continue_from_last_event_id(api: AppClient):
    start = (await _page(api, OPERATOR, START))["last_event_id"]
    for n in range(5):
        await _submit(api, OPERATOR, f"p-{n}")
    first = await _page(api, OPERATOR, start, limit="2")
    second = await _page(api, OPERATOR, first["last_event_id"], limit="2")
    third = await _page(api, OPERATOR, second["last_event_id"], limit="2")
    ids = [e["event"]["eval_id"] for page in (first, second, third) for e in page["events"]]
    assert ids == [f"p-{n}" for n in range(5)]


async def test_stream_replays_then_follows_live_without_others_events(
    api: AppClient, redis_client: Any
):
    start = (await _page(api, ACME, START))["last_event_id"]
    await _submit(api, ACME, "before")
    await _submit(api, GLOBEX, "theirs-before")
    response = await api.get("/v1/events", headers={**ACME, **SSE, "Last-Event-ID": start})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    stream = Messages(response)
    replayed = await stream.next()
    assert (replayed["event"], replayed["data"]["eval_id"]) == ("accepted", "before")
    await publish(redis_client, "globex~theirs-before", "running")
    await publish(redis_client, "acme~before", "running")
    await _submit(api, GLOBEX, "theirs-after")
    await _submit(api, ACME, "after")
    live = [await stream.next() for _ in range(2)]
    assert [(m["event"], m["data"]["eval_id"], m["data"]["tenant"]) for m in live] == [
        ("running", "before", "acme"),
        ("accepted", "after", "acme"),
    ]
    # The id of each message resumes after it: nothing is sent twice.
    assert live[0]["id"] != replayed["id"]
    response.close()


async def test_operator_stream_sees_every_tenant_and_streams_end_at_shutdown(api: AppClient):
    response = await api.get("/v1/events", headers={**OPERATOR, **SSE})
    stream = Messages(response)
    await asyncio.sleep(0.1)  # subscribed once the headers are out; let the reader start
    await _submit(api, ACME, "x")
    await _submit(api, GLOBEX, "y")
    got = [await stream.next() for _ in range(2)]
    assert {(m["data"]["tenant"], m["data"]["eval_id"]) for m in got} == {
        ("acme", "x"),
        ("globex", "y"),
    }
    response.close()


async def test_events_need_a_token_and_check_their_query(api: AppClient):
    assert (await api.get("/v1/events")).status == 401
    assert (await api.get("/v1/events", headers={"Authorization": "Bearer nope"})).status == 401
    bad = await api.get("/v1/events", params={"last_event_id": "x", "limit": "0"}, headers=ACME)
    assert bad.status == 422
    fields = {d["field"] for d in (await bad.json())["error"]["details"]}
    assert "last_event_id" in fields
    limit = await api.get("/v1/events", params={"limit": "501"}, headers=ACME)
    assert limit.status == 422


async def test_config_lists_the_images_and_who_is_asking(api: AppClient):
    acme = await (await api.get("/v1/config", headers=ACME)).json()
    assert acme["tenant"] == "acme"
    assert acme["images"] == ["python", "r"]
    assert acme["default_image"] == "python"
    assert acme["limits"]["timeout_seconds_max"] == 3600
    operator = await (await api.get("/v1/config", headers=OPERATOR)).json()
    assert operator["tenant"] is None
    assert (await api.get("/v1/config")).status == 401


async def test_the_page_is_public_strict_and_versioned(api: AppClient):
    root = await api.get("/", allow_redirects=False)
    assert (root.status, root.headers["Location"]) == (302, "/ui")
    page = await api.get("/ui")
    assert page.status == 200
    assert page.headers["Content-Security-Policy"] == ui_routes.CSP
    assert "script-src 'self';" in ui_routes.CSP
    assert "unsafe" not in ui_routes.CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-cache"
    html = await page.text()
    # No inline script or style: every script has a src, no style element or attribute.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assets = re.findall(r"/ui/assets/([0-9a-f]{16})/([a-z0-9.-]+)", html)
    assert {a[0] for a in assets} == {ui_routes.version()}
    for version, name in assets:
        asset = await api.get(f"/ui/assets/{version}/{name}")
        assert asset.status == 200, name
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers["Content-Security-Policy"] == ui_routes.CSP
    assert (await api.get(f"/ui/assets/{'0' * 16}/app.js")).status == 404
    assert (await api.get(f"/ui/assets/{ui_routes.version()}/index.html")).status == 404
    for path in (
        "/ui/assets/../../v1/evaluations",
        "/ui/..%2Fv1/evaluations",
        "/ui/%2e%2e/v1/config",
    ):
        assert (await api.get(path)).status in (401, 404), path


async def test_events_are_documented_in_openapi(api: AppClient):
    document = await (await api.get("/openapi.json", headers=OPERATOR)).json()
    operation = document["paths"]["/v1/events"]["get"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    limit = next(p for p in operation["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == global_events.EVENTS_LIMIT_MAX
    assert document["paths"]["/ui"]["get"]["security"] == []


async def test_a_subscriber_that_falls_behind_is_dropped_and_the_rest_go_on(redis_client: Any):
    hub = event_hub.Hub(redis_client, queue_max=2)
    async with hub.subscribe(None) as slow, hub.subscribe("acme") as reader:
        seen = []
        for n in range(3):  # the reader takes each as it comes; slow takes none
            await publish(redis_client, f"acme~e{n}", "running")
            item = await asyncio.wait_for(reader.queue.get(), 5)
            assert item is not None
            seen.append(item[2]["eval_id"])
        assert seen == ["e0", "e1", "e2"]
        assert slow.dropped
        assert await slow.queue.get() is None  # the end mark, nothing stale before it
        assert slow.queue.empty()
        assert not reader.dropped
    # The last subscriber gone, the reader stopped; a new one starts it again from "now".
    async with hub.subscribe("acme") as again:
        await publish(redis_client, "acme~late", "running")
        item = await asyncio.wait_for(again.queue.get(), 5)
        assert item is not None
        assert item[2]["eval_id"] == "late"
    await hub.close()
