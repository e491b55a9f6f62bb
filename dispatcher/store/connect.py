"""How the dispatcher connects to Redis: one place for the retry policy and the pool bound."""

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def connect(
    redis_url: str, *, max_connections: int = 64, wait_seconds: float = 5.0
) -> redis.asyncio.Redis:
    """A client that retries a command on a fresh connection once a connection broke (a Redis
    restart leaves every pooled connection stale). Retrying is safe for crucible's commands:
    the scripts are idempotent (event dedup tokens, ``last_seq``, the creation nonce).

    Its pool holds at most ``max_connections``; a command that finds none free waits up to
    ``wait_seconds`` (then the request answers 503): a burst of requests cannot open a
    connection each."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=max_connections,
        timeout=wait_seconds,
        retry=retry,
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
    )
    return redis.asyncio.Redis(connection_pool=pool)
