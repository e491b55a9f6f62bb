"""Per-tenant limits: evaluations not yet ended, submission rate, open event streams. Over a
limit: 429 with Retry-After and nothing created; other tenants and operators are unaffected."""

import asyncio
from typing import Any

import pytest
import redis.asyncio

from dispatcher.api.app import create_app
from tests.integration.dispatcher.conftest import AppClient, FakeBackend, make_settings, publish
from tests.redis_mode import SPACE

TOKENS = ["acme:acme-token-0123456789", "globex:globex-token-0123456789", "operator-token-01234"]
ACME = {"Authorization": "Bearer acme-token-0123456789"}
GLOBEX = {"Authorization": "Bearer globex-token-0123456789"}
OPERATOR = {"Authorization": "Bearer operator-token-01234"}


@pytest.fixture
def make_api(
    aiohttp_client: Any,
    redis_url: str,
    redis_client: redis.asyncio.Redis,
    fake_backend: FakeBackend,
) -> Any:
    async def make(**limits: Any) -> AppClient:
        settings = make_settings(redis_url, api_tokens=TOKENS, tenants=limits)
        client: AppClient = await aiohttp_client(create_app(settings, fake_backend, redis_client))
        return client

    return make


async def _post(api: AppClient, headers: dict[str, str], eval_id: str) -> Any:
    return await api.post(
        "/v1/evaluations", json={"eval_id": eval_id, "code": "print(1)"}, headers=headers
    )


async def test_the_active_limit_refuses_with_429_and_creates_nothing(
    make_api: Any, fake_backend: FakeBackend, redis_client: redis.asyncio.Redis
) -> None:
    api = await make_api(defaults={"active_max": 2, "submissions_per_second": None})
    assert (await _post(api, ACME, "a-1")).status == 201
    assert (await _post(api, ACME, "a-2")).status == 201
    refused = await _post(api, ACME, "a-3")
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "tenant_limit"
    # Nothing of it exists: no record, no stream, no accepted event, no Job.
    assert not await redis_client.exists(SPACE.record("acme~a-3"), SPACE.eval_stream("acme~a-3"))
    assert [s.eval_id for s in fake_backend.submitted] == ["acme~a-1", "acme~a-2"]
    assert (await api.get("/v1/evaluations/a-3", headers=ACME)).status == 404
    # Another tenant and the operator are not held by acme's limit.
    assert (await _post(api, GLOBEX, "g-1")).status == 201
    assert (await _post(api, OPERATOR, "o-1")).status == 201
    # A retry of an existing one is still answered (idempotent), not counted.
    assert (await _post(api, ACME, "a-1")).status == 200
    # Once one ends, there is room again.
    await publish(redis_client, "acme~a-1", "completed", exit_code=0, source="dispatcher")
    await asyncio.sleep(0.3)  # the consumer applies it to the record and its indexes
    assert (await _post(api, ACME, "a-3")).status == 201


async def test_the_rate_limit_allows_the_burst_then_refuses_with_the_wait(
    make_api: Any,
) -> None:
    api = await make_api(limits={"acme": {"submissions_per_second": 0.5, "submissions_burst": 3}})
    statuses = [(await _post(api, ACME, f"r-{i}")).status for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    refused = await _post(api, ACME, "r-9")
    assert 1 <= int(refused.headers["Retry-After"]) <= 2  # one token every 2 s
    assert [(await _post(api, GLOBEX, f"g-{i}")).status for i in range(5)] == [201] * 5


async def test_the_stream_limit_counts_open_streams_per_tenant(
    make_api: Any,
) -> None:
    api = await make_api(defaults={"streams_max": 1})
    assert (await _post(api, ACME, "s-1")).status == 201
    assert (await _post(api, GLOBEX, "s-1")).status == 201
    first = await api.get("/v1/evaluations/s-1/events", headers=ACME)
    assert first.status == 200
    second = await api.get("/v1/evaluations/s-1/events", headers=ACME)
    assert second.status == 429
    assert "Retry-After" in second.headers
    other = await api.get("/v1/evaluations/s-1/events", headers=GLOBEX)
    assert other.status == 200
    first.close()
    other.close()
    for _ in range(100):  # the server notices the closed connection and frees the slot
        again = await api.get("/v1/evaluations/s-1/events", headers=ACME)
        if again.status == 200:
            again.close()
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the closed stream's slot was never freed")


@pytest.mark.parametrize(
    "limits", [{"limits": {"Not_A_Tenant": {}}}, {"defaults": {"active_max": 0}}]
)
def test_bad_limits_stop_the_start(redis_url: str, limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="tenants"):
        make_settings(redis_url, tenants=limits)
