"""POST /v1/evaluations: creation, idempotency, validation through HTTP, refusals."""

import io
import json
from typing import Any

import pytest

from dispatcher import errors
from tests.integration.dispatcher.conftest import AppClient, FakeBackend, queue_full
from tests.redis_mode import SPACE, index_of


async def test_created_record_has_defaults_and_job_name(api: AppClient, fake_backend: FakeBackend):
    response = await api.post("/v1/evaluations", json={"code": "print(1)", "eval_id": "e-1"})
    assert response.status == 201
    assert response.headers["Location"] == "/v1/evaluations/e-1"
    body = await response.json()
    assert body["status"] == "accepted"
    assert body["command"] == ["python", "-u", "-c", "print(1)"]
    assert body["image"] == "python:3.11-slim"
    assert body["resources"] == {"cpu": "500m", "memory": "512Mi"}
    assert body["timeout_seconds"] == 60
    assert body["job_name"] == "fake-e-1"
    assert "request_digest" not in body
    assert "last_seq" not in body
    assert [s.eval_id for s in fake_backend.submitted] == ["e-1"]


async def test_eval_id_is_generated_when_absent(api: AppClient):
    first = await (await api.post("/v1/evaluations", json={"code": "1"})).json()
    second = await (await api.post("/v1/evaluations", json={"code": "1"})).json()
    assert first["eval_id"] != second["eval_id"]
    assert len(first["eval_id"]) == 32


async def test_accepted_event_is_published_after_the_record(api: AppClient, redis_client: Any):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "pub"})
    entries = await redis_client.xrange(SPACE.eval_stream("pub"))
    assert b'"type":"accepted"' in entries[0][1][b"event"]


async def test_same_body_again_is_200_with_the_same_record(
    api: AppClient, fake_backend: FakeBackend
):
    body = {"code": "x", "eval_id": "same", "resources": {"cpu": "0.5"}}
    first = await api.post("/v1/evaluations", json=body)
    # Equivalent spelling of the same request: 500m == 0.5 CPU, defaults written out.
    again = {
        "command": ["python", "-u", "-c", "x"],
        "eval_id": "same",
        "resources": {"cpu": "500m"},
    }
    second = await api.post("/v1/evaluations", json={**again, "timeout_seconds": 60})
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())["created_at"] == (await second.json())["created_at"]
    assert len(fake_backend.submitted) == 1


async def test_same_eval_id_different_body_is_409(api: AppClient):
    await api.post("/v1/evaluations", json={"code": "x", "eval_id": "dup"})
    response = await api.post("/v1/evaluations", json={"code": "y", "eval_id": "dup"})
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "conflict"


async def test_queue_full_is_429_with_retry_after_and_leaves_nothing(
    api: AppClient, fake_backend: FakeBackend, redis_client: Any
):
    fake_backend.refuse = queue_full()
    response = await api.post("/v1/evaluations", json={"code": "x", "eval_id": "full"})
    assert response.status == 429
    assert response.headers["Retry-After"] == "7"
    assert not await redis_client.exists(SPACE.record("full"), SPACE.eval_stream("full"))
    assert not await redis_client.zscore(index_of("full"), "full")
    # The id is free again: once the queue drains, the same request is accepted.
    fake_backend.refuse = None
    retry = await api.post("/v1/evaluations", json={"code": "x", "eval_id": "full"})
    assert retry.status == 201


async def test_backend_failure_is_503_and_the_record_says_error(
    api: AppClient, fake_backend: FakeBackend
):
    fake_backend.refuse = errors.BackendUnavailableError("api server down")
    response = await api.post("/v1/evaluations", json={"code": "x", "eval_id": "down"})
    assert response.status == 503
    record = await (await api.get("/v1/evaluations/down")).json()
    assert record["status"] == "error"
    assert "api server down" in record["reason"]


async def test_unexpected_backend_exception_is_503_not_500(
    api: AppClient, fake_backend: FakeBackend
):
    fake_backend.refuse = RuntimeError("boom")
    response = await api.post("/v1/evaluations", json={"code": "x", "eval_id": "boom"})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "backend_unavailable"


@pytest.mark.parametrize(
    ("body", "headers", "message_part"),
    [
        ("{not json", {"Content-Type": "application/json"}, "malformed JSON"),
        ('{"code": "x"}', {"Content-Type": "text/plain"}, "Content-Type"),
        (b"\xff\xfe", {"Content-Type": "application/json"}, "malformed JSON"),
        ("[1, 2]", {"Content-Type": "application/json"}, "JSON object"),
    ],
)
async def test_unreadable_body_is_422_on_the_body_field(
    api: AppClient, fake_backend: FakeBackend, body: Any, headers: dict[str, str], message_part: str
):
    response = await api.post("/v1/evaluations", data=body, headers=headers)
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == ["body"]
    assert message_part in error["message"] + error["details"][0]["message"]
    assert fake_backend.submitted == []


async def test_every_bad_field_is_reported_once_and_nothing_is_submitted(
    api: AppClient, fake_backend: FakeBackend
):
    body = {
        "code": 1,
        "eval_id": "../etc",
        "image": "evil:latest",
        "timeout_seconds": 0,
        "resources": {"cpu": "-1", "memory": "lots"},
        "env": {"CRUCIBLE_TOKEN": "x"},
        "labels": {"ok": "-bad-"},
        "priority": "high",
    }
    response = await api.post("/v1/evaluations", json=body)
    assert response.status == 422
    fields = [d["field"] for d in (await response.json())["error"]["details"]]
    assert sorted(fields) == sorted(
        [
            "code",
            "eval_id",
            "image",
            "timeout_seconds",
            "resources.cpu",
            "resources.memory",
            "env.CRUCIBLE_TOKEN",
            "labels.ok",
            "priority",
        ]
    )
    assert fake_backend.submitted == []


async def test_oversized_body_is_rejected_without_a_500(api: AppClient):
    huge = io.BytesIO(b"x" * (8 * 2**20))
    headers = {"Content-Type": "application/json"}
    response = await api.post("/v1/evaluations", data=huge, headers=headers)
    assert response.status == 413
    assert "error" in await response.json()


async def test_a_record_whose_accepted_event_fails_is_not_left_behind(api: AppClient, redis_client):
    # The record and its `accepted` event go in one round trip; the event's stream key holding
    # something else makes the event fail after the record was created.
    await redis_client.set(SPACE.eval_stream("half"), "not a stream")
    response = await api.post("/v1/evaluations", json={"eval_id": "half", "code": "pass"})
    assert response.status == 500
    assert not await redis_client.exists(SPACE.record("half"))
    assert await redis_client.zscore(index_of("half"), "half") is None


async def test_the_created_answer_is_the_record_as_stored(api: AppClient):
    """The 201's record is built from validated values without validating them again: the
    stored record, read back and validated, must be it to the type (60.0, not 60)."""
    response = await api.post(
        "/v1/evaluations",
        json={"code": "print(1)", "timeout_seconds": 60, "labels": {"b": "2", "a": "1"}},
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    stored = await (await api.get(f"/v1/evaluations/{created['eval_id']}")).read()
    assert isinstance(created["timeout_seconds"], float)
    assert json.loads(stored) == created
