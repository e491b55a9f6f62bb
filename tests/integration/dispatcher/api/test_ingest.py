"""The sidecars' way in (``dispatcher.api.ingest``) against a real Redis: a pod's credential is
good for its own evaluation alone, what it may say is forced, and what it may store is bounded."""

import io
import json
import time
from typing import Any

import redis.asyncio

from dispatcher.settings import DispatcherSettings
from tests import redis_mode
from tests.integration.dispatcher.conftest import AppClient, publish, record_with
from tests.redis_mode import SPACE
from wire import ingest, ingest_route, limits


def item(eval_id: str, token: str = "t", **fields: Any) -> dict[str, Any]:
    event = {"eval_id": eval_id, "type": "running", "source": "sidecar", **fields}
    return {"token": token, "event": event}


async def post(
    api: AppClient, settings: DispatcherSettings, path_id: str, items: list[dict[str, Any]],
    *, token: str | None = None,
) -> Any:  # fmt: skip
    token = ingest.eval_token(settings.ingest_key_bytes(), path_id) if token is None else token
    body = io.BytesIO(json.dumps({"events": items}).encode())  # large: not as raw bytes
    return await api.post(
        ingest.path(path_id),
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


async def submitted(api: AppClient, eval_id: str) -> None:
    response = await api.post("/v1/evaluations", json={"eval_id": eval_id, "code": "pass"})
    assert response.status == 201, await response.text()


async def test_a_sidecar_publishes_its_own_events_in_order(
    api: AppClient, settings: DispatcherSettings, redis_client: redis.asyncio.Redis
) -> None:
    await submitted(api, "own")
    items = [
        item("own", "running"),
        item("own", "o0", type="output", stream="stdout", offset=0, data="hi\n"),
        item("own", "end", type="failed", exit_code=7, output="hi\n", error=""),
    ]
    response = await post(api, settings, "own", items)
    assert response.status == 200, await response.text()
    results = (await response.json())["results"]
    assert [r["duplicate"] for r in results] == [False, False, False]
    again = await (await post(api, settings, "own", items)).json()
    assert [r["duplicate"] for r in again["results"]] == [True, True, True]
    assert [r["seq"] for r in again["results"]] == [r["seq"] for r in results]
    record = await record_with(api, "own", status="failed")
    assert (record["exit_code"], record["output"], record["verified"]) == (7, "hi\n", False)


async def test_a_credential_is_good_for_its_own_evaluation_only(
    api: AppClient, settings: DispatcherSettings
) -> None:
    mine = ingest.eval_token(settings.ingest_key_bytes(), "mine")
    altered = mine[:-1] + ("1" if mine.endswith("0") else "0")
    for path_id, token in [("theirs", mine), ("mine", ""), ("mine", altered)]:
        response = await post(api, settings, path_id, [item(path_id)], token=token)
        assert response.status == 401, (path_id, await response.text())
    unauthenticated = await api.post(ingest.path("mine"), json={"events": [item("mine")]})
    assert unauthenticated.status == 401


async def test_what_a_sidecar_may_say_is_forced(
    api: AppClient, settings: DispatcherSettings, redis_client: redis.asyncio.Redis
) -> None:
    claims = {
        "event.eval_id": item("theirs"),
        "event.source": item("mine", source="dispatcher"),
        "event.verified": item("mine", type="completed", exit_code=0, verified=True),
        "event.type": item("mine", type="cancelled"),
    }
    for field, claim in claims.items():
        response = await post(api, settings, "mine", [item("mine"), claim])
        assert response.status == 422, field
        body = await response.json()
        assert body["error"]["details"][0]["field"] == field
    unknown = await post(api, settings, "mine", [{"token": "t", "event": {"eval_id": "mine"}}])
    assert unknown.status == 422
    # A refused batch publishes nothing, not even its valid first event.
    assert await redis_client.xlen(SPACE.eval_stream("mine")) == 0
    assert await redis_client.xlen(SPACE.eval_stream("theirs")) == 0


async def test_the_global_stream_carries_status_only(
    api: AppClient, settings: DispatcherSettings, redis_client: redis.asyncio.Redis
) -> None:
    await submitted(api, "slim")
    big = "z" * 50_000
    items = [
        item("slim", "o", type="output", stream="stdout", offset=0, data=big),
        item("slim", "end", type="completed", exit_code=0, output=big, error=big),
    ]
    assert (await post(api, settings, "slim", items)).status == 200
    entries = [
        fields
        for _, fields in await redis_client.xrange(SPACE.global_stream(SPACE.partition("slim")))
        if b'"slim"' in fields[b"event"]
    ]
    assert all(len(fields[b"event"]) < 1024 for fields in entries)
    assert not any(b'"output"' in fields[b"event"] for fields in entries)
    # The record still gets the tails: the consumer reads them from the evaluation's stream.
    record = await record_with(api, "slim", status="completed")
    assert record["output"] == big


async def test_a_pod_stores_at_most_its_budget_and_its_first_end_always(
    api: AppClient, settings: DispatcherSettings, redis_client: redis.asyncio.Redis
) -> None:
    await submitted(api, "flood")
    chunk = "x" * (1024 * 1024)
    dropped = 0
    for i in range(limits.EVAL_BUDGET_BYTES // len(chunk) + 8):
        data = {"type": "output", "stream": "stdout", "offset": i * len(chunk), "data": chunk}
        response = await post(api, settings, "flood", [item("flood", f"o{i}", **data)])
        assert response.status == 200, await response.text()
        dropped += (await response.json())["results"][0]["dropped"]
    assert dropped >= 8
    meta = await redis_client.hget(SPACE.publish_meta("flood"), "bytes")
    assert int(meta or 0) <= limits.EVAL_BUDGET_BYTES
    end = await post(api, settings, "flood", [item("flood", "end", type="failed", exit_code=1)])
    assert (await end.json())["results"][0]["dropped"] is False
    await record_with(api, "flood", status="failed")


async def test_a_verified_verdict_that_disagrees_corrects_the_legacy_channel(
    api: AppClient, redis_client: redis.asyncio.Redis
) -> None:
    await submitted(api, "lied")
    pubsub = redis_mode.pubsub(redis_client)
    await pubsub.psubscribe("evaluation:*")
    try:
        await publish(redis_client, "lied", "completed", exit_code=0)
        await publish(redis_client, "lied", "failed", exit_code=3)  # the sidecar's, late
        await publish(
            redis_client, "lied", "failed", exit_code=3, source="dispatcher", verified=True
        )
        heard = []
        while (message := await pubsub.get_message(timeout=1.0)) is not None:
            if message["type"] == "pmessage":
                heard.append((message["channel"].decode(), json.loads(message["data"])))
    finally:
        await pubsub.aclose()
    assert [(c, m["exit_code"]) for c, m in heard] == [
        ("evaluation:completed", 0),
        ("evaluation:failed", 3),
    ]
    assert heard[1][1]["corrects"] == "completed:0"
    assert heard[1][1]["verified"] is True
    record = await record_with(api, "lied", verified=True)
    assert (record["status"], record["exit_code"]) == ("failed", 3)
    assert "completed -> failed" in record["correction"]


@redis_mode.one_server_only
async def test_redis_at_maxmemory_answers_503_and_creates_nothing(
    api: AppClient, redis_client: redis.asyncio.Redis
) -> None:
    await redis_client.config_set("maxmemory", "1")
    try:
        response = await api.post("/v1/evaluations", json={"eval_id": "full", "code": "pass"})
    finally:
        await redis_client.config_set("maxmemory", "0")
    assert response.status == 503, await response.text()
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "redis_full"
    assert not await redis_client.exists(SPACE.record("full"))


async def test_a_sidecar_fetches_its_own_evaluations_program_and_nothing_else(
    api: AppClient, settings: DispatcherSettings
) -> None:
    program = "print('from a file')\n" + "#" * 300_000  # past one argument's 128 KiB
    response = await api.post("/v1/evaluations", json={"eval_id": "prog", "code": program})
    assert response.status == 201
    command = await api.post("/v1/evaluations", json={"eval_id": "cmd", "command": ["true"]})
    assert command.status == 201

    def get(path_id: str, token_for: str) -> Any:
        token = ingest.eval_token(settings.ingest_key_bytes(), token_for)
        return api.get(
            ingest_route.code_path(path_id), headers={"Authorization": f"Bearer {token}"}
        )

    fetched = await get("prog", "prog")
    assert fetched.status == 200
    assert await fetched.text() == program
    assert (await get("prog", "cmd")).status == 401  # another evaluation's credential
    assert (await api.get(ingest_route.code_path("prog"))).status == 401
    assert (await get("cmd", "cmd")).status == 404  # a command has no program to fetch
    assert (await get("gone", "gone")).status == 404


def age_buckets(metrics_text: str, at: str) -> dict[float, int]:
    """``crucible_dispatcher_event_age_seconds``'s cumulative buckets for ``at``: le -> count."""
    prefix = f'crucible_dispatcher_event_age_seconds_bucket{{at="{at}",le="'
    return {
        float(line[len(prefix) :].split('"')[0]): int(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith(prefix)
    }


async def test_an_events_age_is_measured_where_a_sidecar_delivers_it_and_where_it_goes_live(
    api: AppClient, settings: DispatcherSettings
) -> None:
    await submitted(api, "aged")
    stream = await api.get("/v1/evaluations/aged/events")  # replays `accepted`: not counted
    built = time.time() - 0.25  # the sidecar built it a quarter of a second ago
    response = await post(api, settings, "aged", [item("aged", ts=built)])
    assert response.status == 200, await response.text()
    while b"event: running" not in await stream.content.readuntil(b"\n\n"):
        pass
    stream.close()
    shown = await (await api.get("/metrics")).text()
    for at in ("ingest", "sse"):
        buckets = age_buckets(shown, at)
        assert buckets[0.2] == 0, (at, buckets)  # older than 0.2 s ...
        assert buckets[1.0] == 1, (at, buckets)  # ... younger than 1 s, and only this one
