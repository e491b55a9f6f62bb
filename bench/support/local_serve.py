"""``crucible serve`` (local backend) for the local benchmarks, started as the tests start it
(``tests.serving``), on a Redis the benchmark chooses, and ready when it is handed over."""

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dispatcher.embedded_redis import EmbeddedRedis, free_port
from tests import serving as test_serving


@contextlib.contextmanager
def serve(redis_url: str, **settings: str) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """The server on ``redis_url`` with ``settings`` (``CRUCIBLE_*`` variables), ready: (its
    URL, its process). Its log is shown only if it fails to start."""
    env = {
        **os.environ,
        "CRUCIBLE_REDIS_URL": redis_url,
        "CRUCIBLE_PORT": str(free_port()),
        "CRUCIBLE_LOG_LEVEL": "WARNING",
        **settings,
    }
    with (
        tempfile.TemporaryDirectory(prefix="crucible-bench-serve-") as tmp,
        test_serving.serving_process(env, Path(tmp) / "serve.log") as (base, server),
    ):
        yield base, server


@contextlib.contextmanager
def serving(**settings: str) -> Iterator[tuple[str, "subprocess.Popen[bytes]", str]]:
    """``serve`` on a Redis and a work root of its own: (its URL, its process, the Redis URL)."""
    with (
        tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis_server,
        serve(redis_server.url, CRUCIBLE_LOCAL__WORK_ROOT=str(Path(tmp) / "work"), **settings) as (
            base,
            server,
        ),
    ):
        yield base, server, redis_server.url
