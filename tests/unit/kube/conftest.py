"""Fixtures: the fake API server (kube_fake_api) and Kubernetes backends started against it and
a real Redis."""

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from dispatcher.api import ingest
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.backend import KubernetesBackend
from dispatcher.store import publish
from tests.unit.kube import kube_samples
from tests.unit.kube.backend_harness import Make
from tests.unit.kube.kube_fake_api import FakeKubeAPI


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeKubeAPI]:
    api = FakeKubeAPI()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def make_backend(
    fake_api: FakeKubeAPI, redis_client: redis.asyncio.Redis, tmp_path: pathlib.Path
) -> AsyncIterator[Make]:
    made: list[KubernetesBackend] = []

    async def make(**overrides: Any) -> KubernetesBackend:
        settings: dict[str, Any] = {
            "namespace": "evals",
            "kubeconfig_path": str(fake_api.kubeconfig(tmp_path)),
            "job_template_path": str(kube_samples.CHART_TEMPLATE),
            "tick_seconds": 0.05,
        }
        settings.update(overrides)
        backend = KubernetesBackend(
            kube_config.KubernetesConfig(**settings),
            redis_client=redis_client,
            publisher=publish.Publisher(redis_client),
            link=ingest.SidecarLink(url="http://crucible:8080", key=b"test-key"),
        )
        await backend.start()
        made.append(backend)
        assert backend.reconciler is not None
        async with asyncio.timeout(10):
            for listed in backend.reconciler.listed.values():
                await listed.wait()
        return backend

    yield make
    for backend in made:
        await backend.close()
