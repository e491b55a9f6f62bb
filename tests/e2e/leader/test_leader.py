"""The Lease elector against the real apiserver: two Electors in this process, one namespace.

Exactly one leads; when the leader dies without a word the other takes over once the Lease
expires on its own clock; a clean stop hands over at once; two writes from the same read never
make two leaders. Takeover times are printed, not asserted (bench material), except that a
release must beat the lease duration, which is what tells it from an expiry.
"""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from dispatcher.backends.kube import client, leader
from dispatcher.backends.kube import config as kube_config
from tests.e2e import kube

NAME = "crucible-reconciler"
TIMING = leader.Timing(lease_seconds=15, renew_deadline_seconds=10.0, retry_seconds=2.0)
Make = Callable[..., leader.Elector]


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"crucible-leader-{secrets.token_hex(3)}"
    kube.kubectl("create", "namespace", name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
async def make(namespace: str) -> AsyncIterator[Make]:
    kubes: list[client.KubeClient] = []

    def make_elector(identity: str, *, release_on_cancel: bool = True) -> leader.Elector:
        kube_client = client.KubeClient(kube_config.KubernetesConfig(namespace=namespace))
        kubes.append(kube_client)
        return leader.Elector(
            kube_client,
            name=NAME,
            identity=identity,
            timing=TIMING,
            release_on_cancel=release_on_cancel,
        )

    yield make_elector
    for kube_client in kubes:
        await kube_client.close()


class Terms:
    """The electors' terms: who leads now, and the most that ever led at once."""

    def __init__(self) -> None:
        self.leading: set[str] = set()
        self.most_at_once = 0
        self.changed = asyncio.Condition()

    def of(self, identity: str) -> Callable[[], Any]:
        async def term() -> None:
            async with self.changed:
                self.leading.add(identity)
                self.most_at_once = max(self.most_at_once, len(self.leading))
                self.changed.notify_all()
            try:
                await asyncio.Event().wait()
            finally:
                self.leading.discard(identity)

        return term

    async def wait_for(self, identity: str, within: float) -> None:
        async with asyncio.timeout(within), self.changed:
            await self.changed.wait_for(lambda: identity in self.leading)


def lease(namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.kubectl_json("get", "lease", NAME, "-n", namespace)
    return found


async def start(elector: leader.Elector, terms: Terms) -> "asyncio.Task[None]":
    await elector._kube.open()
    task = asyncio.create_task(elector.run(terms.of(elector.identity)))
    async with asyncio.timeout(30):
        await elector.attempted.wait()
    return task


async def stop(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_one_leads_and_the_other_takes_over_after_expiry_when_it_dies(
    make: Make, namespace: str
) -> None:
    terms = Terms()
    a, b = make("replica-a", release_on_cancel=False), make("replica-b")
    task_a = await start(a, terms)
    assert a.is_leader
    task_b = await start(b, terms)
    await asyncio.sleep(3 * TIMING.retry_seconds)  # several renewals and attempts
    assert (a.is_leader, b.is_leader, terms.leading) == (True, False, {"replica-a"})
    assert lease(namespace)["spec"]["holderIdentity"] == "replica-a"

    await stop(task_a)  # dies: no release, the Lease stays as a last renewed it
    died = time.monotonic()
    assert lease(namespace)["spec"]["holderIdentity"] == "replica-a"
    assert not b.is_leader
    await terms.wait_for("replica-b", within=TIMING.lease_seconds + 4 * TIMING.retry_seconds + 10)
    print(f"\ntakeover after the leader died: {time.monotonic() - died:.1f} s")
    spec = lease(namespace)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("replica-b", 1)
    assert terms.most_at_once == 1
    await stop(task_b)


async def test_a_clean_stop_hands_the_lease_over_before_it_could_expire(
    make: Make, namespace: str
) -> None:
    terms = Terms()
    a, b = make("replica-a"), make("replica-b")
    task_a = await start(a, terms)
    task_b = await start(b, terms)
    assert (a.is_leader, b.is_leader) == (True, False)
    await stop(task_a)
    released = time.monotonic()
    spec = lease(namespace)["spec"]
    assert spec.get("holderIdentity") in (None, "replica-b")
    # An expiry would take a whole lease duration from b's last sight of a renewal.
    await terms.wait_for("replica-b", within=TIMING.lease_seconds - 3 * TIMING.retry_seconds)
    print(f"\ntakeover after a release: {time.monotonic() - released:.1f} s")
    assert terms.most_at_once == 1
    await stop(task_b)


async def test_two_writes_from_the_same_read_never_make_two_leaders(
    make: Make, namespace: str
) -> None:
    a, b = make("replica-a"), make("replica-b")
    for elector in (a, b):
        await elector._kube.open()
    for round_ in range(5):
        seen_a, seen_b = await a.observe(), await b.observe()
        won = await asyncio.gather(a.claim(seen_a), b.claim(seen_b))
        assert sorted(won) == [False, True], (round_, won)  # the other got a 409
        winner = a if won[0] else b
        assert lease(namespace)["spec"]["holderIdentity"] == winner.identity
        assert await winner.release() is True
