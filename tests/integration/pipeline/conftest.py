"""Fixtures of the pipeline tests; the helpers they use are in ``harness``."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dispatcher.backends.local.config import LocalConfig
from tests.integration.pipeline.harness import Dispatcher, DispatcherFactory, LegacySubscriber


@pytest.fixture
async def make_dispatcher() -> AsyncIterator[DispatcherFactory]:
    """Start dispatchers (``redis_url``, ``LocalConfig`` fields as keywords); all are stopped
    at the end of the test."""
    started: list[Dispatcher] = []

    async def make(
        redis_url: str, settings: dict[str, Any] | None = None, **local: Any
    ) -> Dispatcher:
        local.setdefault("concurrency", 4)
        dispatcher = Dispatcher(redis_url, LocalConfig(**local), **(settings or {}))
        started.append(dispatcher)
        return await dispatcher.start()

    yield make
    for dispatcher in reversed(started):
        await dispatcher.stop()


@pytest.fixture
async def dispatcher(make_dispatcher: DispatcherFactory, redis_url: str) -> Dispatcher:
    return await make_dispatcher(redis_url)


@pytest.fixture
def legacy_subscriber(redis_url: str) -> Iterator[LegacySubscriber]:
    subscriber = LegacySubscriber(redis_url).start()
    yield subscriber
    subscriber.stop()
