"""Tenants: a token names a tenant, who reads, lists, streams, fetches output of and cancels
only its own evaluations; anyone else's answers exactly as a missing one does. Two tenants may
use the same eval_id. An operator token sees every tenant."""

import asyncio
import json
from typing import Any

import pydantic
import pytest
import redis.asyncio

from dispatcher import cli
from dispatcher.api.app import create_app
from dispatcher.settings import DispatcherSettings
from tests import redis_mode
from tests.integration.dispatcher.conftest import (
    TERMINAL,
    AppClient,
    ClientFactory,
    FakeBackend,
    make_settings,
    publish,
    record_with,
    wait_for,
)
from wire import keys

TOKENS = ["acme:acme-token-0123456789", "globex:globex-token-0123456789", "operator-token-01234"]
ACME = {"Authorization": "Bearer acme-token-0123456789"}
GLOBEX = {"Authorization": "Bearer globex-token-0123456789"}
OPERATOR = {"Authorization": "Bearer operator-token-01234"}


@pytest.fixture
async def tenants_api(
    redis_client: Any, aiohttp_client: Any, redis_url: str, fake_backend: FakeBackend
) -> AppClient:
    settings = make_settings(redis_url, api_tokens=TOKENS)
    client: AppClient = await aiohttp_client(create_app(settings, fake_backend, redis_client))
    return client


async def _submit(api: AppClient, headers: dict[str, str], eval_id: str, **body: Any) -> Any:
    response = await api.post(
        "/v1/evaluations", json={"eval_id": eval_id, "code": "print(1)", **body}, headers=headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def test_two_tenants_may_use_the_same_id_and_each_sees_its_own(
    tenants_api: AppClient, fake_backend: FakeBackend
) -> None:
    mine = await _submit(tenants_api, ACME, "run-1", labels={"who": "acme"})
    theirs = await _submit(tenants_api, GLOBEX, "run-1", labels={"who": "globex"})
    assert (mine["eval_id"], mine["tenant"]) == ("run-1", "acme")
    assert (theirs["eval_id"], theirs["tenant"]) == ("run-1", "globex")
    assert [s.eval_id for s in fake_backend.submitted] == ["acme~run-1", "globex~run-1"]

    acme = await (await tenants_api.get("/v1/evaluations/run-1", headers=ACME)).json()
    globex = await (await tenants_api.get("/v1/evaluations/run-1", headers=GLOBEX)).json()
    assert acme["labels"] == {"who": "acme"}
    assert globex["labels"] == {"who": "globex"}


async def test_another_tenants_evaluation_answers_exactly_as_a_missing_one(
    tenants_api: AppClient,
) -> None:
    await _submit(tenants_api, ACME, "secret-run")
    calls = [
        ("GET", "/v1/evaluations/{}"),
        ("POST", "/v1/evaluations/{}/cancel"),
        ("GET", "/v1/evaluations/{}/output"),
        ("GET", "/v1/evaluations/{}/events"),
    ]
    for method, path in calls:
        foreign = await tenants_api.request(method, path.format("secret-run"), headers=GLOBEX)
        missing = await tenants_api.request(method, path.format("never-was"), headers=GLOBEX)
        assert foreign.status == missing.status == 404, (method, path)
        body, expected = await foreign.json(), await missing.json()
        assert body["error"]["code"] == expected["error"]["code"]
        assert body["error"]["message"] == expected["error"]["message"].replace(
            "never-was", "secret-run"
        )
        # Naming it with the separator does not reach it either: the prefix is always theirs.
        spoofed = await tenants_api.request(method, path.format("acme~secret-run"), headers=GLOBEX)
        assert spoofed.status in (404, 422), (method, path)
    still = await (await tenants_api.get("/v1/evaluations/secret-run", headers=ACME)).json()
    assert still["status"] != "cancelled"  # globex's cancel reached nothing


async def test_listing_shows_a_tenant_its_own_and_an_operator_everyone(
    tenants_api: AppClient,
) -> None:
    for i in range(3):
        await _submit(tenants_api, ACME, f"a-{i}")
    await _submit(tenants_api, GLOBEX, "g-0")
    await _submit(tenants_api, OPERATOR, "o-0")

    async def ids(headers: dict[str, str], query: str = "") -> list[tuple[str, Any]]:
        body = await (await tenants_api.get(f"/v1/evaluations{query}", headers=headers)).json()
        return [(item["eval_id"], item["tenant"]) for item in body["items"]]

    assert sorted(await ids(ACME)) == [("a-0", "acme"), ("a-1", "acme"), ("a-2", "acme")]
    assert await ids(GLOBEX, "?status=accepted") == [("g-0", "globex")]
    everyone = await ids(OPERATOR)
    assert ("g-0", "globex") in everyone
    assert ("o-0", None) in everyone
    assert len(everyone) == 5
    # Paging a tenant's list walks its own index only.
    first = await (await tenants_api.get("/v1/evaluations?limit=2", headers=ACME)).json()
    query = {"limit": "2", "cursor": first["next_cursor"]}
    rest = await (await tenants_api.get("/v1/evaluations", params=query, headers=ACME)).json()
    assert len(first["items"]) == 2
    assert [i["eval_id"] for i in rest["items"]] == ["a-0"]
    assert rest["next_cursor"] is None


async def test_an_operator_names_a_tenants_evaluation_with_its_tenant(
    tenants_api: AppClient,
) -> None:
    await _submit(tenants_api, ACME, "run-9")
    response = await tenants_api.get("/v1/evaluations/acme~run-9", headers=OPERATOR)
    assert response.status == 200
    assert (await response.json())["tenant"] == "acme"
    cancelled = await tenants_api.post("/v1/evaluations/acme~run-9/cancel", headers=OPERATOR)
    assert cancelled.status == 202
    assert (await record_with(tenants_api_as(tenants_api, ACME), "run-9"))["status"] == "cancelled"


def tenants_api_as(api: AppClient, headers: dict[str, str]) -> Any:
    class As:
        async def get(self, path: str) -> Any:
            return await api.get(path, headers=headers)

    return As()


async def test_events_and_legacy_messages_carry_the_tenant(
    tenants_api: AppClient, redis_client: redis.asyncio.Redis
) -> None:
    pubsub = redis_mode.pubsub(redis_client)
    await pubsub.subscribe(keys.LEGACY_COMPLETED)
    await _submit(tenants_api, ACME, "run-7")
    await publish(redis_client, "acme~run-7", "running", started_at=1.0)
    await publish(redis_client, "acme~run-7", "completed", exit_code=0, output="hi")
    await publish(
        redis_client, "acme~run-7", "completed", exit_code=0, source="dispatcher", verified=True
    )
    response = await tenants_api.get("/v1/evaluations/run-7/events", headers=ACME)
    text = await asyncio.wait_for(response.text(), 10)
    datas = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [d["type"] for d in datas][:3] == ["accepted", "running", "completed"]
    assert {(d["eval_id"], d["tenant"]) for d in datas} == {("run-7", "acme")}
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            break
    assert message is not None
    legacy = json.loads(message["data"])
    assert (legacy["eval_id"], legacy["tenant"]) == ("run-7", "acme")
    await pubsub.aclose()


async def test_submissions_are_counted_per_tenant(tenants_api: AppClient) -> None:
    await _submit(tenants_api, ACME, "m-1")
    refused = await tenants_api.post("/v1/evaluations", json={"code": 5}, headers=GLOBEX)
    assert refused.status == 422
    text = await (await tenants_api.get("/metrics", headers=OPERATOR)).text()
    assert 'crucible_dispatcher_submissions_total{outcome="created",tenant="acme"} 1' in text
    assert 'crucible_dispatcher_submissions_total{outcome="invalid",tenant="globex"} 1' in text


@pytest.mark.parametrize(
    "entry", ["Acme:token-0123456789", "a_b:token-0123456789", ":token-0123456789", "acme:"]
)
def test_a_malformed_token_entry_stops_the_start_without_quoting_the_token(
    redis_url: str, entry: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        DispatcherSettings(redis_url=redis_url, api_tokens=[entry])
    said = cli.settings_problems(caught.value)
    assert "token entry" in said
    assert "token-0123456789" not in said


async def test_the_same_id_runs_twice_for_two_tenants_on_the_local_backend(
    local_api: ClientFactory,
) -> None:
    api = await local_api(settings_overrides={"api_tokens": TOKENS})
    for headers, word in ((ACME, "from-acme"), (GLOBEX, "from-globex")):
        await _submit(api, headers, "same", code=f"print({word!r})")
    for headers, word in ((ACME, "from-acme"), (GLOBEX, "from-globex")):

        async def check(headers: dict[str, str] = headers) -> Any:
            body = await (await api.get("/v1/evaluations/same", headers=headers)).json()
            return body if body["status"] in TERMINAL and body["verified"] else None

        record = await wait_for(check, within=30, what=word)
        assert record["status"] == "completed"
        assert record["output"] == f"{word}\n"
        output = await (await api.get("/v1/evaluations/same/output", headers=headers)).json()
        assert output["stdout"] == f"{word}\n"
