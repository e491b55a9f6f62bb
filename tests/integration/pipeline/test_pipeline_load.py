"""Many evaluations at once, a full queue, and the original design's pub/sub consumer."""

import asyncio

import pytest

from tests.integration.pipeline.harness import Dispatcher, DispatcherFactory, LegacySubscriber

pytestmark = pytest.mark.integration


def outcome_code(i: int) -> str:
    """Evaluation i prints its number and exits with i % 3 (0: completed, else failed)."""
    return f"import sys\nprint({i})\nsys.exit({i % 3})"


async def test_twenty_concurrent_evaluations_all_end_right(
    make_dispatcher: DispatcherFactory, redis_url: str
) -> None:
    dispatcher = await make_dispatcher(redis_url, concurrency=20)
    created = await asyncio.gather(
        *(dispatcher.submit(code=outcome_code(i), eval_id=f"many-{i}") for i in range(20))
    )
    assert [r["eval_id"] for r in created] == [f"many-{i}" for i in range(20)]

    records = await asyncio.gather(
        *(dispatcher.wait_ended(f"many-{i}", within=110) for i in range(20))
    )
    for i, record in enumerate(records):
        expected = "completed" if i % 3 == 0 else "failed"
        assert (record["status"], record["exit_code"]) == (expected, i % 3), record
        assert record["output"] == f"{i}\n"
        assert record["correction"] is None


async def test_the_legacy_consumer_hears_every_end_exactly_once(
    dispatcher: Dispatcher, legacy_subscriber: LegacySubscriber
) -> None:
    """Submitted through the original ``POST /execute``, heard on ``evaluation:*``."""
    cases = {
        "legacy-ok": ("print('fine')", 30),
        "legacy-fail": ("raise SystemExit(4)", 30),
        "legacy-timeout": ("import time\ntime.sleep(60)", 1),
        "legacy-cancel": ("import time\ntime.sleep(60)", 60),
    }
    for eval_id, (code, timeout) in cases.items():
        response = await dispatcher.http.post(
            "/execute",
            json={"eval_id": eval_id, "code": code, "timeout": timeout, "memory_limit": "256Mi"},
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["status"] == "created"
    await dispatcher.wait_for("legacy-cancel", lambda r: r["status"] == "running")
    assert (await dispatcher.http.post("/v1/evaluations/legacy-cancel/cancel")).status == 202
    for eval_id in cases:
        await dispatcher.wait_ended(eval_id)
    legacy_subscriber.stop()

    heard = {m["eval_id"]: m for m in legacy_subscriber.heard}
    assert sorted(m["eval_id"] for m in legacy_subscriber.heard) == sorted(cases)
    assert heard["legacy-ok"]["channel"] == "evaluation:completed"
    assert (heard["legacy-ok"]["exit_code"], heard["legacy-ok"]["output"]) == (0, "fine\n")
    assert heard["legacy-ok"]["duration_seconds"] > 0
    assert (heard["legacy-fail"]["channel"], heard["legacy-fail"]["exit_code"]) == (
        "evaluation:failed",
        4,
    )
    assert heard["legacy-timeout"]["channel"] == "evaluation:failed"
    assert heard["legacy-timeout"]["status"] == "timeout"
    assert heard["legacy-cancel"]["channel"] == "evaluation:failed"
    assert heard["legacy-cancel"]["status"] == "cancelled"


async def test_a_full_queue_answers_429_with_retry_after(
    make_dispatcher: DispatcherFactory, redis_url: str
) -> None:
    # No workers: accepted evaluations wait, and the queue fills.
    dispatcher = await make_dispatcher(redis_url, concurrency=0, queue_size=2)
    for i in range(2):
        await dispatcher.submit(code="print(1)", eval_id=f"queued-{i}")

    response = await dispatcher.http.post(
        "/v1/evaluations", json={"code": "print(1)", "eval_id": "rejected"}
    )
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert (await dispatcher.http.get("/v1/evaluations/rejected")).status == 404

    # A queued evaluation can be cancelled; its slot is free again.
    assert (await dispatcher.http.post("/v1/evaluations/queued-0/cancel")).status == 202
    record = await dispatcher.wait_ended("queued-0")
    assert record["status"] == "cancelled"
    await dispatcher.submit(code="print(1)", eval_id="accepted-now")
    metrics = await (await dispatcher.http.get("/metrics")).text()
    assert 'crucible_dispatcher_backend_evaluations{state="queued"} 2' in metrics
