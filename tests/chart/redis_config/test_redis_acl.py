"""The rendered redis.conf and ACL file, loaded into a real Redis-compatible server: the server
has one user that can do anything, the dispatcher's, on crucible's keys and nothing else;
`default` is off, and there is no user for sidecars or anything else in evaluation pods (they
hand their events to the dispatcher over HTTP)."""

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from dispatcher.store import publish
from tests.chart import acl_redis
from wire import events, keys

pytestmark = pytest.mark.integration
NO_PERMISSION = r"(?i)no permissions|noperm"


@pytest.fixture(scope="module")
def acl_server(
    helm: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[acl_redis.AclServer]:
    with acl_redis.running(tmp_path_factory.mktemp("acl-redis")) as server:
        yield server


@pytest.fixture
async def dispatcher_client(acl_server: acl_redis.AclServer) -> AsyncIterator[Any]:
    client = acl_server.client("dispatcher")
    yield client
    await client.aclose()


def test_acl_file_has_the_dispatcher_and_a_disabled_default_only(
    acl_server: acl_redis.AclServer,
) -> None:
    lines = [line for line in acl_server.acl.splitlines() if line.strip()]
    assert [line.split()[:3] for line in lines] == [
        ["user", "default", "off"],
        ["user", "dispatcher", "on"],
    ]
    assert "sidecar" not in acl_server.acl
    assert "nopass" not in acl_server.acl


async def test_the_server_knows_no_user_but_the_dispatcher(
    acl_server: acl_redis.AclServer,
) -> None:
    inspector = acl_server.inspector()
    try:
        users = {u.decode() for u in await inspector.execute_command("ACL", "USERS")}
        assert users == {"default", "dispatcher", acl_redis.INSPECTOR}
        default = await inspector.acl_getuser("default")
        assert "off" in default["flags"]
        assert default["passwords"] == []
        assert await inspector.acl_getuser("sidecar") is None
    finally:
        await inspector.aclose()


@pytest.mark.parametrize("user", [None, "default", "sidecar", "evaluation"])
async def test_nobody_but_the_dispatcher_gets_in(
    acl_server: acl_redis.AclServer, user: str | None
) -> None:
    # Even with the dispatcher's own password: only its user name goes with it.
    for password in (None, acl_server.passwords["dispatcher"], "password"):
        client = acl_server.connect(user, password)
        with pytest.raises(redis.exceptions.AuthenticationError):
            await client.execute_command("PING")
        await client.aclose()


async def test_dispatcher_user_publishes_and_consumes_events(
    acl_server: acl_redis.AclServer, dispatcher_client: Any
) -> None:
    listener = acl_server.client("dispatcher")
    pubsub = listener.pubsub()
    await pubsub.subscribe(keys.LEGACY_COMPLETED)
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    await dispatcher_client.xgroup_create(
        keys.STANDALONE.global_stream(0), keys.CONSUMER_GROUP, id="0", mkstream=True
    )
    sink = publish.Publisher(dispatcher_client)
    eval_id = "acl-1"
    accepted = events.Event(eval_id=eval_id, type="accepted", source="dispatcher", job_name="j")
    assert (await sink.publish(accepted, token="accepted")).seq == 1
    # What the ingest endpoint publishes for a sidecar: budgeted, through the same script.
    running = events.Event(eval_id=eval_id, type="running", source="sidecar", started_at=1.0)
    done = events.Event(
        eval_id=eval_id,
        type="completed",
        source="sidecar",
        exit_code=0,
        duration_seconds=0.1,
        output="hi\n",
        error="",
        truncated=False,
        verified=False,
    )
    published = await sink.publish_many(
        [(running, "sidecar:running"), (done, "sidecar:terminal")], budget=True
    )
    assert [p.seq for p in published] == [2, 3]
    assert published[1].legacy_published
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    assert b'"exit_code":0' in message["data"]
    await pubsub.aclose()
    await listener.aclose()
    assert await dispatcher_client.xlen(keys.STANDALONE.eval_stream(eval_id)) == 3
    entries = await dispatcher_client.xreadgroup(
        keys.CONSUMER_GROUP, "c1", {keys.STANDALONE.global_stream(0): ">"}, count=10
    )
    assert entries
    await dispatcher_client.xautoclaim(
        keys.STANDALONE.global_stream(0), keys.CONSUMER_GROUP, "c2", 0
    )
    await dispatcher_client.hset(keys.STANDALONE.record("x"), mapping={"status": '"accepted"'})
    await dispatcher_client.expire(keys.STANDALONE.record("x"), 60)
    await dispatcher_client.zadd(keys.STANDALONE.index(0), {"x": 1.0})


DISPATCHER_FORBIDDEN = [
    ("FLUSHALL",),
    ("KEYS", "*"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
    ("ACL", "LIST"),
    ("ACL", "SETUSER", "sidecar", "on", ">x", "+@all", "~*"),
    ("GET", "not-crucible"),
    ("SET", "other:key", "x"),
    ("PUBLISH", "other", "x"),
    # Scripts run with the caller's rights: no detour through EVAL.
    ("EVAL", "return redis.call('FLUSHALL')", "0"),
    ("EVAL", "return redis.call('GET', KEYS[1])", "1", "not-crucible"),
]


@pytest.mark.parametrize(
    "command", DISPATCHER_FORBIDDEN, ids=[" ".join(c[:2]) for c in DISPATCHER_FORBIDDEN]
)
async def test_dispatcher_user_cannot_touch_the_server_or_other_keys(
    dispatcher_client: Any, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match=NO_PERMISSION):
        await dispatcher_client.execute_command(*command)
