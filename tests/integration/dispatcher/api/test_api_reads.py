"""Reading: GET a record, list with filter and cursor pages, the full output."""

import asyncio
from typing import Any

from tests.integration.dispatcher.conftest import AppClient, FakeBackend, publish, record_with


async def submit(api: AppClient, eval_id: str) -> None:
    assert (await api.post("/v1/evaluations", json={"code": "1", "eval_id": eval_id})).status == 201


async def test_get_unknown_evaluation_is_404_json(api: AppClient):
    response = await api.get("/v1/evaluations/missing")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_list_pages_newest_first_without_gaps_or_repeats(api: AppClient):
    ids = [f"l{i}" for i in range(7)]
    for eval_id in ids:
        await submit(api, eval_id)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await (await api.get("/v1/evaluations" + query)).json()
        seen += [r["eval_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_list_filters_by_status(api: AppClient, redis_client: Any):
    for eval_id in ("a", "b", "c"):
        await submit(api, eval_id)
    await publish(redis_client, "b", "completed", exit_code=0)
    await record_with(api, "b", status="completed")
    done = await (await api.get("/v1/evaluations?status=completed")).json()
    accepted = await (await api.get("/v1/evaluations?status=accepted")).json()
    assert [r["eval_id"] for r in done["items"]] == ["b"]
    assert [r["eval_id"] for r in accepted["items"]] == ["c", "a"]


async def test_list_rejects_bad_query_values_each_once(api: AppClient):
    response = await api.get("/v1/evaluations?status=bogus&limit=0")
    assert response.status == 422
    fields = [d["field"] for d in (await response.json())["error"]["details"]]
    assert fields == ["status", "limit"]
    bad_cursor = await api.get("/v1/evaluations?cursor=%%%")
    assert bad_cursor.status == 422


async def test_output_is_reassembled_in_order_without_duplicates(api: AppClient, redis_client: Any):
    await submit(api, "out")
    # Out of order, one chunk repeated (a producer retry), both streams.
    await publish(redis_client, "out", "output", stream="stdout", offset=6, data="world\n")
    await publish(redis_client, "out", "output", stream="stdout", offset=0, data="hello ")
    await publish(redis_client, "out", "output", stream="stdout", offset=6, data="world\n")
    await publish(redis_client, "out", "output", stream="stderr", offset=0, data="warn\n")
    body = await (await api.get("/v1/evaluations/out/output")).json()
    assert body == {"stdout": "hello world\n", "stderr": "warn\n", "truncated": False}
    text = await api.get("/v1/evaluations/out/output?stream=stderr")
    assert text.headers["Content-Type"].startswith("text/plain")
    assert await text.text() == "warn\n"


async def test_output_with_a_hole_or_capped_by_the_wrapper_says_truncated(
    api: AppClient, redis_client: Any
):
    await submit(api, "holes")
    await publish(redis_client, "holes", "output", stream="stdout", offset=0, data="ab")
    await publish(redis_client, "holes", "output", stream="stdout", offset=10, data="yz")
    assert (await (await api.get("/v1/evaluations/holes/output")).json())["truncated"] is True
    await submit(api, "capped")
    await publish(redis_client, "capped", "output", stream="stdout", offset=0, data="ab")
    await publish(redis_client, "capped", "completed", exit_code=0, truncated=True)
    assert (await (await api.get("/v1/evaluations/capped/output")).json())["truncated"] is True


async def test_output_of_unknown_evaluation_is_404_and_bad_stream_422(api: AppClient):
    assert (await api.get("/v1/evaluations/none/output")).status == 404
    await submit(api, "s")
    assert (await api.get("/v1/evaluations/s/output?stream=stdin")).status == 422


async def test_a_listing_carries_summaries_and_one_record_the_rest(
    api: AppClient, redis_client: Any
):
    big = "print('x')\n" + "#" * 500_000
    assert (await api.post("/v1/evaluations", json={"code": big, "eval_id": "big"})).status == 201
    await publish(redis_client, "big", "completed", exit_code=0, output="y" * 60_000)
    await record_with(api, "big", status="completed")
    listing = await api.get("/v1/evaluations")
    assert len(await listing.read()) < 2_000  # not the 560 KB the record holds
    (item,) = (await listing.json())["items"]
    assert (item["eval_id"], item["status"], item["exit_code"]) == ("big", "completed", 0)
    assert not {"command", "output", "error"} & set(item)
    record = await (await api.get("/v1/evaluations/big")).json()
    assert record["command"][-1] == big
    assert record["output"] == "y" * 60_000


async def test_a_queued_evaluation_shows_where_it_stands_now(
    api: AppClient, redis_client: Any, fake_backend: FakeBackend
):
    await submit(api, "waiting")
    await publish(redis_client, "waiting", "queued", position=5)
    stored = await record_with(api, "waiting", status="queued")
    assert stored["queue_position"] == 5  # what the event said, while the backend knows no more
    fake_backend.positions["waiting"] = 2
    assert (await (await api.get("/v1/evaluations/waiting")).json())["queue_position"] == 2
    await publish(redis_client, "waiting", "scheduled", job_name="job")
    started = await record_with(api, "waiting", status="scheduled")
    assert started["queue_position"] is None


async def test_the_backend_hears_of_each_end_once_it_is_applied(
    api: AppClient, redis_client: Any, fake_backend: FakeBackend
):
    await submit(api, "ends")
    await publish(redis_client, "ends", "running", started_at=1.0)
    await publish(redis_client, "ends", "completed", exit_code=0)
    await record_with(api, "ends", status="completed")
    async with asyncio.timeout(5):  # told right after the batch that applied it
        await fake_backend.an_end.wait()
    assert fake_backend.ended == ["ends"]
