"""``crucible.AsyncClient`` against a live dispatcher (local backend, real Redis, two tenants)."""

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator

import pytest

import crucible
from tests.integration.client.conftest import (
    ACME_TOKEN,
    GLOBEX_TOKEN,
    OPERATOR_TOKEN,
    SLEEPER,
    assert_no_token,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def acme(dispatcher_url: str) -> AsyncIterator[crucible.AsyncClient]:
    async with crucible.AsyncClient(dispatcher_url, ACME_TOKEN) as client:
        yield client


async def test_submit_then_wait_returns_the_completed_verified_record_with_its_output(
    acme: crucible.AsyncClient,
) -> None:
    submitted = await acme.submit(command=["python", "-c", "print('hi')"], eval_id="async-hi")
    assert (submitted.eval_id, submitted.tenant) == ("async-hi", "acme")
    record = await acme.wait("async-hi", timeout=30)
    assert (record.status, record.verified, record.exit_code) == ("completed", True, 0)
    assert record.output == "hi\n"
    assert (await acme.output("async-hi")).stdout == "hi\n"
    assert await acme.get("async-hi") == record


async def test_watch_yields_running_output_and_the_verified_end_in_order_with_the_tenant(
    acme: crucible.AsyncClient,
) -> None:
    await acme.submit("print('a'); print('b')", eval_id="async-watch")
    seen = [e async for e in acme.watch("async-watch")]
    types = [e.type for e in seen]
    assert types.index("running") < types.index("output") < types.index("completed")
    assert seen[-1].final
    assert {(e.eval_id, e.tenant) for e in seen} == {("async-watch", "acme")}
    assert "".join(e.data or "" for e in seen if e.stream == "stdout") == "a\nb\n"


async def test_list_follows_next_cursor_across_pages_newest_first(
    acme: crucible.AsyncClient,
) -> None:
    ids = [(await acme.submit("pass", eval_id=f"async-page-{n}")).eval_id for n in range(5)]
    listed = [e.eval_id async for e in acme.list(limit=2)]
    assert [i for i in listed if i in ids] == ids[::-1]


async def test_cancel_of_a_long_running_evaluation_ends_it_cancelled(
    acme: crucible.AsyncClient,
) -> None:
    await acme.submit(SLEEPER, eval_id="async-cancel")
    async with contextlib.aclosing(acme.watch("async-cancel")) as events:
        async for event in events:
            if event.type == "running":
                break
    await acme.cancel("async-cancel")
    record = await acme.wait("async-cancel", timeout=30)
    assert (record.status, record.verified) == ("cancelled", True)


async def test_wait_gives_up_after_its_timeout_and_the_evaluation_goes_on(
    acme: crucible.AsyncClient,
) -> None:
    await acme.submit(SLEEPER, eval_id="async-slow")
    with pytest.raises(crucible.WaitTimeoutError):
        await acme.wait("async-slow", timeout=0.5)
    assert not (await acme.get("async-slow")).terminal
    await acme.cancel("async-slow")


async def test_another_tenants_evaluation_is_not_found_but_an_operator_names_it(
    acme: crucible.AsyncClient, dispatcher_url: str
) -> None:
    await acme.submit("pass", eval_id="async-private")
    async with crucible.AsyncClient(dispatcher_url, GLOBEX_TOKEN) as globex:
        with pytest.raises(crucible.NotFoundError):
            await globex.get("async-private")
        with pytest.raises(crucible.NotFoundError):
            [e async for e in globex.watch("async-private")]
    async with crucible.AsyncClient(dispatcher_url, OPERATOR_TOKEN) as operator:
        assert (await operator.get("acme~async-private")).tenant == "acme"


async def test_an_invalid_submission_names_every_bad_field(acme: crucible.AsyncClient) -> None:
    with pytest.raises(crucible.InvalidRequestError) as caught:
        await acme.submit("print(1)", command=["true"], labels={"-bad-": "x"})
    assert caught.value.status == 422
    assert set(caught.value.field_errors) == {"command", "labels.-bad-"}


async def test_url_and_token_come_from_the_environment_when_not_passed(
    dispatcher_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_URL", dispatcher_url)
    monkeypatch.setenv("CRUCIBLE_TOKEN", GLOBEX_TOKEN)
    async with crucible.AsyncClient() as client:
        assert (await client.submit("pass", eval_id="async-from-env")).tenant == "globex"


async def test_the_token_never_shows_in_reprs_or_errors(
    acme: crucible.AsyncClient, dispatcher_url: str
) -> None:
    assert_no_token(repr(acme), repr(vars(acme)))
    errors: list[crucible.CrucibleError] = []
    with pytest.raises(crucible.InvalidRequestError) as invalid:
        await acme.submit("pass", resources={"memory": ACME_TOKEN})
    errors.append(invalid.value)
    async with crucible.AsyncClient(dispatcher_url, ACME_TOKEN + "-wrong") as wrong:
        with pytest.raises(crucible.UnauthorizedError) as refused:
            await wrong.get("x")
    errors.append(refused.value)
    async with crucible.AsyncClient("http://127.0.0.1:9", ACME_TOKEN) as unreachable:
        with pytest.raises(crucible.TransportError) as failed:
            await unreachable.get("x")
    errors.append(failed.value)
    for error in errors:
        shown = "".join(traceback.format_exception(error))
        assert_no_token(str(error), repr(error), shown, repr(error.__cause__))


async def test_watches_of_one_client_run_side_by_side(acme: crucible.AsyncClient) -> None:
    for n in range(3):
        await acme.submit(f"print({n})", eval_id=f"async-many-{n}")
    records = await asyncio.gather(*(acme.wait(f"async-many-{n}", timeout=30) for n in range(3)))
    assert [r.output for r in records] == ["0\n", "1\n", "2\n"]
