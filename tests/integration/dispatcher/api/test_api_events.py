"""GET /v1/evaluations/{id}/events: SSE replay, live follow, resume, end at the verified end."""

import asyncio
import io
import json
import time
from typing import Any

from crucible.async_client import AsyncClient
from dispatcher import client as cli_client
from tests.integration.dispatcher.conftest import AppClient, publish, record_with


async def read_messages(response: Any) -> list[dict[str, Any]]:
    """Every SSE message of a finished response: id, event, data (decoded)."""
    text = (await response.read()).decode()
    messages = []
    for block in text.split("\n\n"):
        lines = dict(
            line.split(": ", 1)
            for line in block.splitlines()
            if not line.startswith(":") and ": " in line
        )
        if "data" in lines:
            messages.append(
                {"id": lines["id"], "event": lines["event"], "data": json.loads(lines["data"])}
            )
    return messages


async def submitted(api: AppClient, eval_id: str) -> None:
    assert (await api.post("/v1/evaluations", json={"code": "1", "eval_id": eval_id})).status == 201


async def test_replay_of_a_finished_evaluation_ends_after_the_verified_verdict(
    api: AppClient, redis_client: Any
):
    await submitted(api, "done")
    await publish(redis_client, "done", "running", started_at=1.0)
    await publish(redis_client, "done", "output", stream="stdout", offset=0, data="hi\n")
    await publish(redis_client, "done", "completed", exit_code=0)
    # The verified verdict corrects the first: a client reading to the end holds it.
    await publish(redis_client, "done", "failed", exit_code=1, source="dispatcher", verified=True)
    # Published after the verified end: not part of this response.
    await publish(redis_client, "done", "output", stream="stdout", offset=3, data="late\n")
    response = await api.get("/v1/evaluations/done/events")
    assert response.headers["Content-Type"].startswith("text/event-stream")
    messages = await read_messages(response)
    kinds = [m["event"] for m in messages]
    assert kinds == ["accepted", "running", "output", "completed", "failed"]
    assert [m["data"]["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert messages[2]["data"]["data"] == "hi\n"
    assert messages[-1]["data"]["verified"] is True


async def test_without_a_verified_verdict_the_stream_ends_after_the_wait(
    api: AppClient, redis_client: Any, settings: Any
):
    await submitted(api, "unconfirmed")
    await publish(redis_client, "unconfirmed", "completed", exit_code=0)
    started = time.monotonic()
    messages = await read_messages(await api.get("/v1/evaluations/unconfirmed/events"))
    waited = time.monotonic() - started
    assert [m["event"] for m in messages] == ["accepted", "completed"]
    assert settings.sse_verify_wait_seconds <= waited < settings.sse_verify_wait_seconds + 5


async def test_live_events_arrive_and_the_stream_ends_at_the_end(api: AppClient, redis_client: Any):
    await submitted(api, "live")
    response = await api.get("/v1/evaluations/live/events")
    first = await response.content.readuntil(b"\n\n")  # the retry hint
    assert first.startswith(b"retry:")
    accepted = await response.content.readuntil(b"\n\n")
    assert b"event: accepted" in accepted

    await publish(redis_client, "live", "running", started_at=2.0)
    await publish(redis_client, "live", "timeout", reason="timeout after 1s", exit_code=143)
    await publish(
        redis_client, "live", "timeout", exit_code=143, source="dispatcher", verified=True
    )
    # read() returns only once the server ends the response: after the verified timeout event.
    rest = (await response.read()).decode()
    assert rest.index("event: running") < rest.index("event: timeout")
    assert json.loads(rest.rstrip().rpartition("data: ")[2])["verified"] is True


async def test_last_event_id_resumes_after_that_event(api: AppClient, redis_client: Any):
    await submitted(api, "resume")
    running_id = await publish(redis_client, "resume", "running", started_at=1.0)
    await publish(redis_client, "resume", "output", stream="stderr", offset=0, data="e")
    await publish(redis_client, "resume", "failed", exit_code=2)
    by_header = await read_messages(
        await api.get("/v1/evaluations/resume/events", headers={"Last-Event-ID": running_id})
    )
    by_query = await read_messages(
        await api.get(f"/v1/evaluations/resume/events?last_event_id={running_id}")
    )
    assert [m["event"] for m in by_header] == ["output", "failed"]
    assert by_query == by_header


async def test_resuming_after_the_end_returns_what_followed_and_ends(
    api: AppClient, redis_client: Any
):
    await submitted(api, "after")
    end_id = await publish(redis_client, "after", "completed", exit_code=0)
    await publish(
        redis_client,
        "after",
        "failed",
        exit_code=137,
        reason="OOMKilled",
        source="dispatcher",
        verified=True,
    )
    await record_with(api, "after", verified=True)
    messages = await read_messages(
        await api.get("/v1/evaluations/after/events", headers={"Last-Event-ID": end_id})
    )
    assert [m["event"] for m in messages] == ["failed"]


async def test_idle_stream_gets_heartbeats(api: AppClient):
    await submitted(api, "idle")
    response = await api.get("/v1/evaluations/idle/events")
    seen = b""
    while b": heartbeat" not in seen:
        seen += await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
    response.close()


async def test_unknown_evaluation_is_404_and_bad_resume_id_is_422(api: AppClient):
    assert (await api.get("/v1/evaluations/nope/events")).status == 404
    await submitted(api, "bad-id")
    response = await api.get("/v1/evaluations/bad-id/events", headers={"Last-Event-ID": "x; DROP"})
    assert response.status == 422


async def test_cli_watch_prints_output_and_returns_the_exit_code(api: AppClient, redis_client: Any):
    """The CLI's SSE reader against the real endpoint."""
    await submitted(api, "watched")
    await publish(redis_client, "watched", "running", started_at=1.0)
    await publish(redis_client, "watched", "output", stream="stdout", offset=0, data="out\n")
    await publish(redis_client, "watched", "output", stream="stderr", offset=0, data="err\n")
    await publish(redis_client, "watched", "failed", exit_code=3)
    stdout, stderr = io.StringIO(), io.StringIO()
    async with AsyncClient(str(api.make_url("/"))) as client:
        code = await cli_client.watch(client, "watched", stdout=stdout, stderr=stderr)
    assert code == 3
    assert stdout.getvalue() == "out\n"
    assert "err\n" in stderr.getvalue()
    assert "failed exit_code=3" in stderr.getvalue()
