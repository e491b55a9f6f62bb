"""How the dispatcher connects to Redis: one place for the retry policy and the pool bound."""

import socket

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

# Idle 5 s, then a probe every 2 s; 3 unanswered probes end the connection.
KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3}
# Redis answers in milliseconds; a reply this late, beyond what the command blocks for itself,
# means the peer is gone, and a connect this slow means its address leads nowhere.
REPLY_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0


def connect(
    redis_url: str,
    *,
    max_connections: int = 64,
    wait_seconds: float = 5.0,
    longest_block_seconds: float = 0.0,
) -> redis.asyncio.Redis:
    """A client that retries a command on a fresh connection once a connection broke (a Redis
    restart leaves every pooled connection stale). Retrying is safe for crucible's commands:
    the scripts are idempotent (event dedup tokens, ``last_seq``, the creation nonce).

    Its pool holds at most ``max_connections``; a command that finds none free waits up to
    ``wait_seconds`` (then the request answers 503): a burst of requests cannot open a
    connection each.

    TCP keepalive finds a connection whose peer vanished without closing it (Redis's pod
    deleted: the Service's address still leads to the old pod, whose packets go nowhere) in
    about 11 s; without it a command on such a connection waits for TCP's own timeout, many
    minutes, and whatever awaits it (the reconciler, a readiness check) hangs that long.
    Keepalive covers only idle connections: a command already sent waits for its reply at most
    ``REPLY_TIMEOUT_SECONDS`` past ``longest_block_seconds`` (the longest BLOCK any of the
    client's commands asks for), a connect at most ``CONNECT_TIMEOUT_SECONDS`` (the Service's
    address during a Redis restart may lead nowhere for a moment); then the retry."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        redis_url,
        max_connections=max_connections,
        timeout=wait_seconds,
        retry=retry,
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_timeout=REPLY_TIMEOUT_SECONDS + longest_block_seconds,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_keepalive=True,
        socket_keepalive_options=KEEPALIVE,
    )
    return redis.asyncio.Redis(connection_pool=pool)
