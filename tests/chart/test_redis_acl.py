"""The rendered redis.conf and ACL file, loaded into a real Redis-compatible server: the sidecar
user can publish events through the real publish script and do nothing else, the dispatcher
user can use crucible's keys, the default user is off."""

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio
import redis.exceptions

from sidecar import events, publisher, streams
from sidecar.settings import SidecarSettings
from tests.chart import acl_redis

pytestmark = pytest.mark.integration
NO_PERMISSION = r"(?i)no permissions|noperm"


@pytest.fixture(scope="module")
def acl_server(
    helm: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[acl_redis.AclServer]:
    with acl_redis.running(tmp_path_factory.mktemp("acl-redis")) as server:
        yield server


@pytest.fixture
async def sidecar_client(
    acl_server: acl_redis.AclServer, tmp_path: pathlib.Path
) -> AsyncIterator[Any]:
    """Connected exactly as the sidecar in an evaluation pod: user in the URL, password file."""
    password_file = tmp_path / "password"
    password_file.write_text(acl_server.passwords["sidecar"] + "\n")
    config = SidecarSettings(
        eval_id="acl-1",
        redis_url=f"redis://sidecar@127.0.0.1:{acl_server.port}/0",
        redis_password_file=password_file,
    )
    client = publisher.connect(config)
    yield client
    await client.aclose()


@pytest.fixture
async def dispatcher_client(acl_server: acl_redis.AclServer) -> AsyncIterator[Any]:
    client = acl_server.client("dispatcher")
    yield client
    await client.aclose()


async def test_sidecar_user_publishes_every_kind_of_event(
    sidecar_client: Any, dispatcher_client: Any
) -> None:
    pubsub = dispatcher_client.pubsub()
    await pubsub.subscribe("evaluation:completed")
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    sink = streams.Publisher(sidecar_client)
    eval_id = "acl-1"
    running = events.Event(eval_id=eval_id, type="running", source="sidecar", started_at=1.0)
    output = events.Event(
        eval_id=eval_id, type="output", source="sidecar", stream="stdout", offset=0, data="hi\n"
    )
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
    assert (await sink.publish(running, token="running")).seq == 1
    assert (await sink.publish(output, token="output:stdout:0:3")).seq == 2
    first = await sink.publish(done, token="terminal")
    again = await sink.publish(done, token="terminal")
    assert (first.seq, first.legacy_published, again.duplicate) == (3, True, True)
    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    assert message is not None
    assert b'"exit_code":0' in message["data"]
    await pubsub.aclose()
    # The dispatcher user reads what the sidecar wrote.
    assert await dispatcher_client.xlen(streams.eval_stream(eval_id)) == 3
    assert await dispatcher_client.xlen(streams.GLOBAL_STREAM) >= 3


SIDECAR_FORBIDDEN = [
    ("GET", "crucible:eval:acl-1"),
    ("HGETALL", "crucible:pub:acl-1"),
    ("XRANGE", "crucible:events", "-", "+"),
    ("XADD", "other:stream", "*", "f", "v"),
    ("SET", "crucible:eval:acl-1", "x"),
    ("DEL", "crucible:events"),
    ("PUBLISH", "other-channel", "x"),
    ("SUBSCRIBE", "evaluation:completed"),
    ("FLUSHALL",),
    ("KEYS", "*"),
    ("CONFIG", "GET", "*"),
    ("ACL", "LIST"),
    # Scripts run with the caller's rights: no detour through EVAL.
    ("EVAL", "return redis.call('GET', KEYS[1])", "1", "crucible:eval:acl-1"),
    ("EVAL", "return redis.call('DEL', KEYS[1])", "1", "crucible:events:acl-1"),
]


@pytest.mark.parametrize(
    "command", SIDECAR_FORBIDDEN, ids=[" ".join(c[:2]) for c in SIDECAR_FORBIDDEN]
)
async def test_sidecar_user_may_do_nothing_else(
    sidecar_client: Any, command: tuple[str, ...]
) -> None:
    with pytest.raises(redis.exceptions.ResponseError, match=NO_PERMISSION):
        await sidecar_client.execute_command(*command)


async def test_dispatcher_user_has_crucible_keys_but_not_the_server(dispatcher_client: Any) -> None:
    await dispatcher_client.xgroup_create(
        streams.GLOBAL_STREAM, streams.CONSUMER_GROUP, id="0", mkstream=True
    )
    entries = await dispatcher_client.xreadgroup(
        streams.CONSUMER_GROUP, "c1", {streams.GLOBAL_STREAM: ">"}, count=10
    )
    assert entries is not None
    await dispatcher_client.hset("crucible:eval:x", mapping={"status": "accepted"})
    await dispatcher_client.expire("crucible:eval:x", 60)
    await dispatcher_client.zadd("crucible:evals", {"x": 1.0})
    await dispatcher_client.xautoclaim(streams.GLOBAL_STREAM, streams.CONSUMER_GROUP, "c2", 0)
    sink = streams.Publisher(dispatcher_client)
    event = events.Event(eval_id="x", type="accepted", source="dispatcher", job_name="j")
    assert (await sink.publish(event, token="accepted")).seq == 1
    for command in (
        ("FLUSHALL",),
        ("KEYS", "*"),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("GET", "not-crucible"),
        ("PUBLISH", "other", "x"),
    ):
        with pytest.raises(redis.exceptions.ResponseError, match=NO_PERMISSION):
            await dispatcher_client.execute_command(*command)


async def test_default_user_is_off_and_wrong_passwords_fail(
    acl_server: acl_redis.AclServer,
) -> None:
    anonymous = acl_server.client(None)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await anonymous.execute_command("PING")
    await anonymous.aclose()
    wrong = acl_server.connect("sidecar", acl_server.passwords["dispatcher"])
    with pytest.raises(redis.exceptions.AuthenticationError):
        await wrong.execute_command("PING")
    await wrong.aclose()
