"""How the dispatcher connects to Redis: one place for the retry policy and the pool bound, and
for which keyspace a client's server holds (``wire.keys.Keyspace``)."""

import asyncio
import dataclasses
import socket
import urllib.parse
from typing import Any, cast

import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from dispatcher.store import packing
from wire import keys

# Idle 5 s, then a probe every 2 s; 3 unanswered probes end the connection.
KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3}
# Redis answers in milliseconds; a reply this late, beyond what the command blocks for itself,
# means the peer is gone, and a connect this slow means its address leads nowhere.
REPLY_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Target:
    """Which Redis: ``url``, and how to read it (``connect``)."""

    url: str
    cluster: bool = False
    sentinel_master: str | None = None

    def connect(self, **options: Any) -> redis.asyncio.Redis:
        return connect(
            self.url, cluster=self.cluster, sentinel_master=self.sentinel_master, **options
        )


def connect(
    redis_url: str,
    *,
    cluster: bool = False,
    sentinel_master: str | None = None,
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
    address during a Redis restart may lead nowhere for a moment); then the retry.

    ``cluster``: a Redis Cluster client (``redis_url`` names any of its nodes). redis-py's
    cluster client bounds connections per node but has no blocking pool: a command that finds
    none free fails at once (``MaxConnectionsError``, a ``ConnectionError``: the API's 503).
    It is typed as the plain client, whose commands crucible uses and it has; what it lacks
    (PUBLISH outside scripts, SUBSCRIBE, transactions over slots) crucible does not call. Its
    nodes' connections keep redis-py's own packing (it fixes their class), the others pack in
    one pass (``store.packing``).

    ``sentinel_master``: ``redis_url`` names the Sentinels (``redis://[user:password@]host:port,
    host:port/db``; the credentials and db are the master's), which say where the master of
    that name is now; after a failover the client asks them again."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
    if sentinel_master is not None:
        return _sentinel_master(redis_url, sentinel_master, retry, longest_block_seconds)
    if cluster:
        client = redis.asyncio.cluster.RedisCluster.from_url(
            redis_url,
            max_connections=max_connections,
            retry=retry,
            socket_timeout=REPLY_TIMEOUT_SECONDS + longest_block_seconds,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_keepalive=True,
            socket_keepalive_options=KEEPALIVE,
        )
        return cast(redis.asyncio.Redis, client)
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
    packing.use_one_pass(pool)
    return redis.asyncio.Redis(connection_pool=pool)


def sentinels_of(redis_url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The Sentinels' addresses in ``redis_url``, and the master's credentials and db."""
    parts = urllib.parse.urlsplit(redis_url)
    auth, _, hosts = parts.netloc.rpartition("@")
    user, _, password = auth.partition(":")
    addresses = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        addresses.append((name or port, int(port) if name else 26379))
    db = parts.path.strip("/") or "0"
    master = {
        "username": urllib.parse.unquote(user) or None,
        "password": urllib.parse.unquote(password) or None,
        "db": int(db),
        "ssl": parts.scheme == "rediss",
    }
    return addresses, master


def _sentinel_master(
    redis_url: str, name: str, retry: Retry, longest_block_seconds: float
) -> redis.asyncio.Redis:
    addresses, master = sentinels_of(redis_url)
    timeouts = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_keepalive": True,
        "socket_keepalive_options": KEEPALIVE,
    }
    sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        addresses,
        sentinel_kwargs={**timeouts, "socket_timeout": REPLY_TIMEOUT_SECONDS},
        **timeouts,
    )
    master_client: redis.asyncio.Redis = sentinel.master_for(
        name,
        retry=retry,
        retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        socket_timeout=REPLY_TIMEOUT_SECONDS + longest_block_seconds,
        **{k: v for k, v in master.items() if v is not None and v is not False},
    )
    packing.use_one_pass(master_client.connection_pool)
    return master_client


def keyspace(client: redis.asyncio.Redis) -> keys.Keyspace:
    """The keyspace of ``client``'s server: partitioned on a Redis Cluster."""
    given: object = client  # typed as the plain client (``connect``)
    if isinstance(given, redis.asyncio.cluster.RedisCluster):
        return keys.CLUSTER
    return keys.STANDALONE


async def initialized(client: redis.asyncio.Redis) -> None:
    """A Redis Cluster client learns its nodes and the server's command table now, before
    tasks use it at once: redis-py lets a command that races the first one past a table still
    loading, and a two-word command (XGROUP CREATE) then finds no key in its arguments and
    fails ("No way to dispatch this command"). One Redis: nothing to do."""
    given: object = client
    if isinstance(given, redis.asyncio.cluster.RedisCluster):
        await given.initialize()


def is_cluster_pipeline(pipe: object) -> bool:
    return isinstance(pipe, redis.asyncio.cluster.ClusterPipeline)


class BlockingReads:
    """The client for a command that blocks on one key (XREAD or XREADGROUP with BLOCK).

    On one Redis, the client itself. On a Redis Cluster, a plain client of the node that
    serves the key (one pool per node, with the cluster client's connection settings):
    redis-py's cluster client does not end a blocking read it is cancelled in (the reply
    comes back as a TimeoutError once the socket timeout passes), and a reader is cancelled
    whenever its SSE client leaves or the dispatcher stops. A plain client drops the
    connection at once. A slot that moved meanwhile answers MOVED: the reader's retry asks
    the cluster client again."""

    def __init__(self, client: redis.asyncio.Redis, *, max_connections: int = 64) -> None:
        self._client = client
        self._max_connections = max_connections
        self._nodes: dict[str, redis.asyncio.Redis] = {}

    async def for_key(self, key: str) -> redis.asyncio.Redis:
        given: object = self._client
        if not isinstance(given, redis.asyncio.cluster.RedisCluster):
            return self._client
        await initialized(self._client)
        node = given.get_node_from_key(key)
        if node is None:
            return self._client
        plain = self._nodes.get(node.name)
        if plain is None:
            pool = redis.asyncio.ConnectionPool(
                connection_class=node.connection_class,
                max_connections=self._max_connections,
                **node.connection_kwargs,
            )
            plain = self._nodes[node.name] = redis.asyncio.Redis(connection_pool=pool)
        return plain

    async def aclose(self) -> None:
        for plain in self._nodes.values():
            await plain.aclose()
            await plain.connection_pool.disconnect()
        self._nodes.clear()


def abandon(read: "asyncio.Future[Any]") -> None:
    """Cancel a read the caller no longer waits for, without waiting for it to end: a cancel
    that lands while its connection is being set up can be lost (Python 3.11's
    ``asyncio.wait_for``, which redis-py's connect uses, may swallow it), and the read then
    runs on until its block or the socket timeout ends it, or its pool is closed."""
    read.cancel()
    read.add_done_callback(_retrieve)


def _retrieve(read: "asyncio.Future[Any]") -> None:
    if not read.cancelled():
        read.exception()  # seen, so not reported as "never retrieved"
