"""The API with the real local backend: real wrapper and sidecar processes, real events."""

import asyncio
import time
from typing import Any

from tests.integration.dispatcher.conftest import record_with
from tests.redis_mode import SPACE, inflight_of


async def test_submitted_code_runs_and_its_record_and_output_are_complete(local_api: Any):
    api = await local_api(concurrency=1)
    code = "import sys; print('to out'); print('to err', file=sys.stderr); sys.exit(4)"
    created = await api.post("/v1/evaluations", json={"code": code, "eval_id": "real"})
    assert created.status == 201
    events = (await (await api.get("/v1/evaluations/real/events")).read()).decode()
    assert events.index("event: running") < events.index("event: failed")
    record = await record_with(api, "real", verified=True)
    assert (record["status"], record["exit_code"], record["job_name"]) == (
        "failed",
        4,
        "local-real",
    )
    output = await (await api.get("/v1/evaluations/real/output")).json()
    assert output == {"stdout": "to out\n", "stderr": "to err\n", "truncated": False}


async def test_full_local_queue_answers_429_and_keeps_no_record(local_api: Any, redis_client: Any):
    api = await local_api(concurrency=0, queue_size=1)
    assert (await api.post("/v1/evaluations", json={"code": "1", "eval_id": "q1"})).status == 201
    refused = await api.post("/v1/evaluations", json={"code": "1", "eval_id": "q2"})
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert not await redis_client.exists(SPACE.record("q2"))
    metrics = await (await api.get("/metrics")).text()
    assert 'crucible_dispatcher_backend_evaluations{state="queued"} 1' in metrics


async def test_cancel_stops_a_running_process_and_stays_cancelled(local_api: Any):
    api = await local_api(concurrency=1)
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    await api.post("/v1/evaluations", json={"code": code, "eval_id": "stop"})
    await record_with(api, "stop", status="running")
    response = await api.post("/v1/evaluations/stop/cancel")
    assert response.status == 202  # cancelled, the record kept
    assert (await response.json())["status"] == "cancelled"
    record = await record_with(api, "stop", verified=True)
    assert record["status"] == "cancelled"


async def test_a_mebibyte_of_code_runs_it_does_not_travel_in_argv(local_api: Any):
    """Linux takes 128 KiB per argument: the program comes on the interpreter's stdin."""
    api = await local_api(concurrency=1)
    filler = "#" + "x" * 1023 + "\n"
    code = "import sys\n" + filler * 1020 + "print('ran', sys.argv)\n"
    assert 1_040_000 < len(code.encode()) <= 2**20
    created = await api.post("/v1/evaluations", json={"code": code, "eval_id": "big"})
    assert created.status == 201, await created.text()
    record = await record_with(api, "big", verified=True)
    assert (record["status"], record["exit_code"]) == ("completed", 0), record
    assert record["output"] == "ran ['-']\n"
    assert record["command"] == ["python", "-u", "-c", code]  # the record shows the request


async def test_a_wrapper_that_dies_before_it_connects_frees_its_slot_at_once(
    local_api: Any, tmp_path: Any
):
    """A cancel during the wrapper's start kills it before it reaches the sidecar: the
    sidecar, with no channel, is stopped at once, not waited for (it held the slot 20 s)."""
    api = await local_api(concurrency=1)
    wrapper = tmp_path / "work" / "crucible-wrapper"
    intact = wrapper.read_bytes()
    wrapper.write_text("import sys\nsys.exit(125)\n")  # exits without connecting
    started = time.monotonic()
    await api.post("/v1/evaluations", json={"code": "print(1)", "eval_id": "dies"})
    await record_with(api, "dies", verified=True)
    wrapper.write_bytes(intact)
    await api.post("/v1/evaluations", json={"code": "print(2)", "eval_id": "next"})
    record = await record_with(api, "next", verified=True)
    assert record["output"] == "2\n"
    assert time.monotonic() - started < 8  # the sidecar exit timeout alone is 10 s


async def test_a_burst_takes_one_slot_and_one_in_flight_entry_per_evaluation(
    local_api: Any, redis_client: Any
):
    """The backend takes a submission in the record's own round trip: retries and conflicts
    of the same burst give their slot back and write no entry of their own."""
    api = await local_api(concurrency=0, queue_size=3)

    async def post(eval_id: str, code: str = "1") -> int:
        response = await api.post("/v1/evaluations", json={"code": code, "eval_id": eval_id})
        return response.status

    assert sorted(await asyncio.gather(post("b1"), post("b1"), post("b2"))) == [200, 201, 201]
    assert await post("b1", "2") == 409
    assert await post("b3") == 201  # the retry and the conflict held no slot
    assert await post("b4") == 429
    held = [e for e in ("b1", "b2", "b3", "b4") if await redis_client.hexists(inflight_of(e), e)]
    assert held == ["b1", "b2", "b3"]
    for eval_id in ("b1", "b2", "b3"):
        record = await (await api.get(f"/v1/evaluations/{eval_id}")).json()
        assert (record["status"], record["job_name"]) == ("accepted", f"local-{eval_id}")
        accepted = await redis_client.xrange(SPACE.eval_stream(eval_id))
        assert len(accepted) == 1
