"""Redis's memory cap: `maxmemory` below the container's memory limit (80% of it unless
redis.maxmemory says otherwise) and `noeviction`, so a full Redis refuses writes (the dispatcher
answers 503 with Retry-After) rather than evicting records or being killed by the kubelet; and a
real server configured by the chart does exactly that."""

import pathlib
import re

import pytest
import redis.exceptions

from tests.chart import acl_redis, render


def redis_conf(sets: list[str]) -> dict[str, str]:
    conf = render.one(render.template(sets=sets), "ConfigMap", "-redis")["data"]["redis.conf"]
    return dict(
        line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#")
    )


@pytest.mark.parametrize(
    ("sets", "maxmemory"),
    [
        ([], str(int(512 * 2**20 * 0.8))),
        (["redis.resources.limits.memory=1Gi"], str(int(2**30 * 0.8))),
        (["redis.resources.limits.memory=1.5Gi"], str(int(1.5 * 2**30 * 0.8))),
        (["redis.resources.limits.memory=2G"], str(int(2e9 * 0.8))),
        (["redis.resources.limits.memory=536870912"], str(int(512 * 2**20 * 0.8))),
        (["redis.maxmemory=300mb"], "300mb"),
        (["redis.maxmemory=300mb", "redis.resources.limits=null"], "300mb"),
    ],
)
def test_maxmemory_follows_the_memory_limit_unless_set(
    helm: str, sets: list[str], maxmemory: str
) -> None:
    conf = redis_conf(sets)
    assert conf["maxmemory"] == maxmemory
    assert conf["maxmemory-policy"] == "noeviction"


def test_default_leaves_headroom_below_the_limit(defaults: list[render.Manifest]) -> None:
    spec = render.one(defaults, "StatefulSet", "-redis")["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["memory"] == "512Mi"
    conf = render.one(defaults, "ConfigMap", "-redis")["data"]["redis.conf"]
    assert re.search(r"^maxmemory (\d+)$", conf, re.M)
    assert "maxmemory-policy noeviction" in conf


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["redis.resources.limits=null"], "redis.maxmemory is empty"),
        (["redis.resources.limits.memory=512000m"], "cannot read the memory quantity"),
    ],
)
def test_no_cap_is_refused(helm: str, sets: list[str], message: str) -> None:
    with pytest.raises(render.HelmError, match=message):
        render.template(sets=sets)


@pytest.mark.integration
async def test_a_full_redis_refuses_writes_and_keeps_what_it_has(
    helm: str, tmp_path: pathlib.Path
) -> None:
    with acl_redis.running(tmp_path / "full", sets=["redis.maxmemory=4mb"]) as server:
        client = server.client("dispatcher")
        try:
            written = 0
            refused: redis.exceptions.OutOfMemoryError | None = None
            while written < 1000:
                try:
                    await client.hset(f"crucible:eval:full-{written}", "output", "x" * 65536)
                except redis.exceptions.OutOfMemoryError as e:
                    refused = e
                    break
                written += 1
            assert refused is not None
            assert 10 < written < 1000
            # noeviction: every record written before the refusal is still there.
            present = [await client.exists(f"crucible:eval:full-{i}") for i in range(written)]
            assert all(present)
            # Reads and deletes still work, and free room for writes again.
            await client.delete(*[f"crucible:eval:full-{i}" for i in range(written // 2)])
            await client.hset("crucible:eval:after", "status", '"accepted"')
        finally:
            await client.aclose()
