"""Redis away at start, or killed mid-stream: everything arrives once, in order."""

import pathlib

import pytest
import redis.asyncio

from sidecar import events
from tests import redisproc
from tests.integration.sidecar.conftest import (
    SimulatedWrapper,
    StartSidecar,
    assert_well_formed,
    eventually,
    has_terminal,
    make_settings,
    reassemble,
    wait_for_events,
)

pytestmark = pytest.mark.integration


async def wait_for_retries(sidecar_log: pytest.LogCaptureFixture) -> None:
    """Until the sidecar has logged that Redis is unavailable (so the outage was really seen)."""
    await eventually(
        lambda: any("redis unavailable" in r.getMessage() for r in sidecar_log.records)
    )


async def test_redis_down_at_start_then_up_delivers_everything_in_order(
    restartable_redis: redisproc.RedisProcess,
    wrapper: SimulatedWrapper,
    start_sidecar: StartSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    restartable_redis.kill()
    sidecar = await start_sidecar(make_settings(restartable_redis.url, wrapper.dir))
    wrapper.start()
    for n in range(50):
        wrapper.write("stdout", f"line {n}\n".encode())
    wrapper.write("stderr", b"to stderr\n")
    await wait_for_retries(caplog)
    wrapper.finish(exit_code=2)
    restartable_redis.start()

    assert await sidecar.result() == 0
    found = await wait_for_events(restartable_redis.url, "ev-1", has_terminal)
    assert_well_formed(found)
    assert found[0].type == events.EventType.RUNNING
    assert found[-1].type == events.EventType.FAILED
    assert reassemble(found, "stdout") == wrapper.written["stdout"].decode()
    assert reassemble(found, "stderr") == "to stderr\n"


async def test_redis_killed_mid_stream_loses_and_duplicates_nothing(
    restartable_redis: redisproc.RedisProcess,
    wrapper: SimulatedWrapper,
    start_sidecar: StartSidecar,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = restartable_redis.url
    config = make_settings(url, wrapper.dir, batch_bytes=4096, batch_interval_seconds=0)
    sidecar = await start_sidecar(config)
    wrapper.start()
    for n in range(300):
        wrapper.write("stdout", f"before {n:04d}\n".encode() * 20)
    await wait_for_events(url, "ev-1", lambda f: len(f) > 10)
    restartable_redis.kill()
    for n in range(300):
        wrapper.write("stdout", f"during {n:04d}\n".encode() * 20)
        wrapper.write("stderr", f"err {n}\n".encode())
    await wait_for_retries(caplog)
    restartable_redis.start()
    for n in range(100):
        wrapper.write("stdout", f"after {n:04d}\n".encode())
    wrapper.finish(exit_code=0)

    assert await sidecar.result() == 0
    found = await wait_for_events(url, "ev-1", has_terminal)
    assert_well_formed(found)
    assert reassemble(found, "stdout") == wrapper.written["stdout"].decode()
    assert reassemble(found, "stderr") == wrapper.written["stderr"].decode()
    assert found[-1].type == events.EventType.COMPLETED


async def test_a_refused_publish_stops_the_sidecar_with_a_non_zero_code(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    async with redis.asyncio.Redis.from_url(redis_url) as admin:
        # A user that may connect but not run scripts: NOPERM is not transient.
        await admin.acl_setuser(
            "mute", enabled=True, passwords=["+pw"], keys=["*"], commands=["-@all", "+ping"]
        )
        try:
            url = redis_url.replace("redis://", "redis://mute:pw@")
            sidecar = await start_sidecar(make_settings(url, wrapper.dir))
            wrapper.start()
            assert await sidecar.result() == 2
        finally:
            await admin.acl_deluser("mute")


async def test_a_wrong_password_is_not_retried_forever(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar, tmp_path: pathlib.Path
) -> None:
    async with redis.asyncio.Redis.from_url(redis_url) as admin:
        await admin.acl_setuser(
            "pub",
            enabled=True,
            passwords=["+right"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        try:
            secret = tmp_path / "password"
            secret.write_text("wrong\n")
            url = redis_url.replace("redis://", "redis://pub@")
            config = make_settings(url, wrapper.dir, redis_password_file=secret)
            sidecar = await start_sidecar(config)
            wrapper.start()
            assert await sidecar.result() == 2
            # And the right password from the file works.
            secret.write_text("right\n")
            sidecar = await start_sidecar(config)
            wrapper.finish(exit_code=0)
            assert await sidecar.result() == 0
        finally:
            await admin.acl_deluser("pub")
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert [e.type for e in found] == ["running", "completed"]
