"""The Lease elector with the real client against the fake API server.

Expiry is decided on a clock the tests hold, so these tests are exact about when a takeover may
happen; tests/e2e/leader/test_leader.py runs the same rules against a real apiserver.
"""

import asyncio
import os
import pathlib
import time
from collections.abc import AsyncIterator, Callable

import pydantic
import pytest

from dispatcher.backends.kube import client, leader
from dispatcher.backends.kube import config as kube_config
from tests.unit.kube.kube_fake_api import FakeKubeAPI

TIMING = leader.Timing(lease_seconds=15, renew_deadline_seconds=10.0, retry_seconds=2.0)
FAST = leader.Timing(lease_seconds=2, renew_deadline_seconds=0.6, retry_seconds=0.05)
Make = Callable[..., leader.Elector]
NAME = "crucible-reconciler"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make(fake_api: FakeKubeAPI, tmp_path: pathlib.Path) -> AsyncIterator[Make]:
    config = kube_config.KubernetesConfig(
        namespace="evals", kubeconfig_path=str(fake_api.kubeconfig(tmp_path))
    )
    kubes: list[client.KubeClient] = []

    def make_elector(
        identity: str,
        timing: leader.Timing = TIMING,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> leader.Elector:
        kube = client.KubeClient(config)
        kubes.append(kube)
        return leader.Elector(
            kube, name=NAME, identity=identity, timing=timing, clock=clock, wall_clock=wall_clock
        )

    yield make_elector
    for kube in kubes:
        await kube.close()


async def opened(elector: leader.Elector) -> leader.Elector:
    await elector._kube.open()
    return elector


async def test_the_first_takes_a_missing_lease_and_the_second_waits(
    make: Make, fake_api: FakeKubeAPI
) -> None:
    a, b = await opened(make("a")), await opened(make("b"))
    assert await a.try_acquire_or_renew() is True
    assert await b.try_acquire_or_renew() is False
    assert await a.try_acquire_or_renew() is True  # a renewal
    spec = fake_api.leases[NAME]["spec"]
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0


async def test_takeover_waits_a_lease_duration_on_the_observers_clock_whatever_the_holders(
    make: Make, fake_api: FakeKubeAPI
) -> None:
    # The holder's wall clock is a century ahead: only the observer's elapsed time counts.
    a = await opened(make("a", wall_clock=lambda: time.time() + 3.2e9))
    clock = Clock(1000.0)
    b = await opened(make("b", clock=clock, wall_clock=lambda: time.time() - 1.0e9))
    assert await a.try_acquire_or_renew() is True
    assert await b.try_acquire_or_renew() is False  # observed now, at 1000
    clock.now = 1014.9
    assert await b.try_acquire_or_renew() is False
    assert await a.try_acquire_or_renew() is True  # a renews: the record changes
    clock.now = 1016.0
    assert await b.try_acquire_or_renew() is False  # seen changed at 1016: 15 s more
    clock.now = 1031.0
    assert await b.try_acquire_or_renew() is True
    spec = fake_api.leases[NAME]["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)


async def test_of_two_writes_from_the_same_read_exactly_one_wins(make: Make) -> None:
    a, b = await opened(make("a")), await opened(make("b"))
    seen_a, seen_b = await a.observe(), await b.observe()
    assert (seen_a, seen_b) == (None, None)
    assert [await a.claim(seen_a), await b.claim(seen_b)] == [True, False]  # create: 409
    assert await a.release() is True
    seen_a, seen_b = await a.observe(), await b.observe()
    results = [await b.claim(seen_b), await a.claim(seen_a)]
    assert results == [True, False]  # replace: the stale resourceVersion gets 409


async def test_a_released_lease_is_taken_at_once(make: Make, fake_api: FakeKubeAPI) -> None:
    a, b = await opened(make("a")), await opened(make("b", clock=Clock(0.0)))
    assert await a.try_acquire_or_renew() is True
    assert await b.try_acquire_or_renew() is False
    assert await a.release() is True
    assert fake_api.leases[NAME]["spec"].get("holderIdentity") is None
    assert await b.try_acquire_or_renew() is True  # b's clock has not moved


async def test_the_term_runs_while_leading_and_is_cancelled_when_another_takes_the_lease(
    make: Make, fake_api: FakeKubeAPI
) -> None:
    a = await opened(make("a", FAST))
    started, stopped = asyncio.Event(), asyncio.Event()

    async def term() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(a.run(term))
    async with asyncio.timeout(5):
        await started.wait()
    assert a.is_leader is True
    lease = fake_api.leases[NAME]
    lease["spec"]["holderIdentity"] = "intruder"
    lease["metadata"]["resourceVersion"] = "lease-intruder"
    async with asyncio.timeout(5):
        await stopped.wait()
    assert [a.is_leader] == [False]  # a list: mypy narrowed the property to True above
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_api.leases[NAME]["spec"]["holderIdentity"] == "intruder"


async def test_the_leader_steps_down_when_it_cannot_renew(
    make: Make, fake_api: FakeKubeAPI
) -> None:
    a = await opened(make("a", FAST))
    stopped = asyncio.Event()

    async def term() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(a.run(term))
    async with asyncio.timeout(5):
        await a.attempted.wait()
    assert a.is_leader is True
    await fake_api.stop()  # every renewal fails from now on
    async with asyncio.timeout(5):
        await stopped.wait()
    assert [a.is_leader] == [False]  # a list: mypy narrowed the property to True above
    task.cancel()  # the release fails too, and does not hold the stop up
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_clean_stop_ends_the_term_then_releases_the_lease(
    make: Make, fake_api: FakeKubeAPI
) -> None:
    a = await opened(make("a", FAST))
    holder_when_stopped: list[object] = []

    async def term() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            holder_when_stopped.append(fake_api.leases[NAME]["spec"].get("holderIdentity"))

    task = asyncio.create_task(a.run(term))
    async with asyncio.timeout(5):
        await a.attempted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert holder_when_stopped == ["a"]  # the term stopped while the Lease was still held
    spec = fake_api.leases[NAME]["spec"]
    assert (spec.get("holderIdentity"), spec["leaseDurationSeconds"]) == (None, 1)


def test_leader_timing_must_leave_the_leader_time_to_step_down() -> None:
    with pytest.raises(pydantic.ValidationError, match="retry_seconds < renew_deadline"):
        kube_config.KubernetesConfig(leader_renew_deadline_seconds=20.0)
    with pytest.raises(pydantic.ValidationError, match="retry_seconds < renew_deadline"):
        kube_config.KubernetesConfig(leader_retry_seconds=10.0)


def test_the_lease_is_named_after_the_instance_as_a_dns_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = kube_config.KubernetesConfig(instance="My_Release")
    assert leader.lease_name(config) == "my-release-reconciler"
    named = kube_config.KubernetesConfig(leader_lease_name="x", leader_identity="me")
    assert (leader.lease_name(named), leader.identity(named)) == ("x", "me")
    monkeypatch.setenv("POD_NAME", "crucible-dispatcher-abc")
    assert leader.identity(config) == "crucible-dispatcher-abc"
    monkeypatch.delenv("POD_NAME")
    assert leader.identity(config).endswith(f"-{os.getpid()}")
