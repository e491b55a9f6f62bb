"""A live dispatcher for the client's tests: ``crucible serve`` as a process, the real local
backend, the session's Redis server, two tenants and an operator (and a third tenant whose
limit of one evaluation at a time gives a 429).

One per test module: a dispatcher left running would join the consumer group of the next
modules' dispatchers on the same Redis.
"""

import json
import os
from collections.abc import Iterator

import pytest
import redis

from tests import redisproc, serving

ACME_TOKEN = "acme-client-token-4f1c9a"
GLOBEX_TOKEN = "globex-client-token-8d2e7b"
LIMITED_TOKEN = "initech-client-token-3b6a0c"
OPERATOR_TOKEN = "operator-client-token-9e5f21"
TOKENS = [
    f"acme:{ACME_TOKEN}",
    f"globex:{GLOBEX_TOKEN}",
    f"initech:{LIMITED_TOKEN}",
    OPERATOR_TOKEN,
]
EVERY_TOKEN = (ACME_TOKEN, GLOBEX_TOKEN, LIMITED_TOKEN, OPERATOR_TOKEN)
# Runs until cancelled: the long evaluation of the cancel and timeout tests.
SLEEPER = "import time; time.sleep(60)"


@pytest.fixture(scope="module")
def dispatcher_url(
    redis_server: redisproc.RedisProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The base URL of a ready ``crucible serve``; it is stopped after the module."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    directory = tmp_path_factory.mktemp("client-serve")
    port = redisproc.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env |= {
        "CRUCIBLE_REDIS_URL": redis_server.url,
        "CRUCIBLE_PORT": str(port),
        "CRUCIBLE_LOCAL__WORK_ROOT": str(directory / "work"),
        "CRUCIBLE_API_TOKENS": ",".join(TOKENS),
        "CRUCIBLE_TENANTS__LIMITS": json.dumps({"initech": {"active_max": 1}}),
    }
    with serving.serving(env, directory / "serve.log") as url:
        yield url


@pytest.fixture(autouse=True)
def _no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which URL and token it uses; the developer's own do not leak in."""
    monkeypatch.delenv("CRUCIBLE_URL", raising=False)
    monkeypatch.delenv("CRUCIBLE_TOKEN", raising=False)


def assert_no_token(*texts: str) -> None:
    for text in texts:
        for token in EVERY_TOKEN:
            assert token not in text, "a token shows"
