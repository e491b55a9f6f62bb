"""POST …/cancel and the original design's POST /execute."""

from typing import Any

from tests.integration.dispatcher.conftest import AppClient, FakeBackend, publish, record_with


async def test_cancel_publishes_cancelled_before_stopping_and_answers_the_record(
    api: AppClient, fake_backend: FakeBackend, redis_client: Any
):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "c1"})
    await publish(redis_client, "c1", "running", started_at=1.0)
    response = await api.post("/v1/evaluations/c1/cancel")
    assert response.status == 202  # cancelled, the record kept
    body = await response.json()
    assert body["status"] == "cancelled"
    assert body["started_at"] == 1.0  # events before the cancel were applied, in order
    assert fake_backend.cancelled == ["c1"]
    # The process's exit by signal, reported afterwards, does not replace the cancel.
    await publish(redis_client, "c1", "failed", exit_code=143, signal=15)
    await publish(
        redis_client, "c1", "failed", exit_code=143, signal=15, source="dispatcher", verified=True
    )
    record = await record_with(api, "c1", verified=True)
    assert record["status"] == "cancelled"
    assert record["exit_code"] == 143


async def test_cancel_of_an_ended_evaluation_changes_nothing(
    api: AppClient, fake_backend: FakeBackend, redis_client: Any
):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "c2"})
    await publish(redis_client, "c2", "completed", exit_code=0)
    before = await record_with(api, "c2", status="completed")
    response = await api.post("/v1/evaluations/c2/cancel")
    assert response.status == 202  # the same answer; the record is unchanged
    assert await response.json() == before
    assert fake_backend.cancelled == []


async def test_cancel_of_unknown_evaluation_is_404(api: AppClient):
    assert (await api.post("/v1/evaluations/ghost/cancel")).status == 404


async def test_delete_is_the_designs_cancel_and_removes_nothing(
    api: AppClient, fake_backend: FakeBackend
):
    await api.post("/v1/evaluations", json={"code": "1", "eval_id": "kept"})
    response = await api.delete("/v1/evaluations/kept")
    assert response.status == 202
    assert (await response.json())["status"] == "cancelled"
    assert fake_backend.cancelled == ["kept"]
    assert (await api.get("/v1/evaluations/kept")).status == 200  # the record is kept


async def test_execute_answers_in_the_original_shape(api: AppClient, fake_backend: FakeBackend):
    body = {
        "eval_id": "eval_123",
        "code": "print(1)",
        "timeout": 30,
        "memory_limit": "1Gi",
        "cpu_limit": "1",
    }
    response = await api.post("/execute", json=body)
    assert response.status == 200
    assert await response.json() == {
        "eval_id": "eval_123",
        "job_name": "fake-eval_123",
        "status": "created",
        "message": "Job created successfully",
    }
    submission = fake_backend.submitted[0]
    assert submission.timeout_seconds == 30
    assert (submission.resources.cpu, submission.resources.memory) == ("1", "1Gi")
    record = await (await api.get("/v1/evaluations/eval_123")).json()
    assert record["command"] == ["python", "-u", "-c", "print(1)"]
    again = await api.post("/execute", json=body)
    assert (await again.json())["message"] == "Job already exists"
    conflict = await api.post("/execute", json={**body, "code": "print(2)"})
    assert conflict.status == 409


async def test_execute_validates_with_its_own_field_names(
    api: AppClient, fake_backend: FakeBackend
):
    response = await api.post(
        "/execute", json={"eval_id": "e", "timeout": 99999, "memory_limit": "1Ti", "cpu_limit": "x"}
    )
    assert response.status == 422
    fields = sorted(d["field"] for d in (await response.json())["error"]["details"])
    assert fields == ["code", "cpu_limit", "memory_limit", "timeout"]
    assert fake_backend.submitted == []
