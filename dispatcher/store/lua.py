"""The Lua scripts, sent as EVALSHA alone, in pipelines too.

redis-py's registered scripts ask the server ``SCRIPT EXISTS`` before every pipeline that holds
one: one more round trip on every submission, sidecar batch and consumer batch (11 % of the
dispatcher's CPU per submission, profiled with py-spy). Here a pipeline carries EVALSHA only. A
NOSCRIPT reply (Redis restarted or its script cache was flushed) means that command did not
run: the scripts are loaded and the commands that met it are sent again, in their order.

A Redis Cluster pipeline (redis-py's ``ClusterPipeline``) refuses ``evalsha`` and SCRIPT LOAD
among its commands and keeps no ``command_stack``: scripts go as ``EVALSHA`` through
``execute_command``, a NOSCRIPT loads the scripts on every primary through the client, and a
command that met a broken connection (a node restarting; the cluster pipeline does not retry
one when errors are returned) is sent again, as the standalone client's retry would. Every
script is idempotent (dedup tokens, ``last_seq``, the creation nonce), so resending is safe.
"""

import asyncio
import hashlib
from collections.abc import Mapping
from typing import Any

import redis.asyncio
import redis.exceptions
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from dispatcher.store import connect
from wire import scripts

# A cluster pipeline's commands that met a broken connection: sent again this many times.
_CLUSTER_RESENDS = 3
_RESEND_PAUSE_SECONDS = 0.2


class Lua:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: list[str], args: list[Any]) -> None:
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def __call__(self, client: redis.asyncio.Redis, keys: list[str], args: list[Any]) -> Any:
        async with client.pipeline(transaction=False) as pipe:
            self.queue(pipe, keys, args)
            (reply,) = await execute(pipe)
        return reply


PUBLISH = Lua(scripts.PUBLISH)
CREATE_RECORD = Lua(scripts.CREATE_RECORD)
APPLY_EVENT = Lua(scripts.APPLY_EVENT)
ENQUEUE = Lua(scripts.ENQUEUE)
QUEUE_POSITION = Lua(scripts.QUEUE_POSITION)
ADMIT = Lua(scripts.ADMIT)
WITHDRAW = Lua(scripts.WITHDRAW)
REQUEUE = Lua(scripts.REQUEUE)
REMOVE_RECORD = Lua(scripts.REMOVE_RECORD)
TENANT_ADMIT = Lua(scripts.TENANT_ADMIT)
_BY_SHA = {
    script.sha: script
    for script in (
        PUBLISH,
        CREATE_RECORD,
        APPLY_EVENT,
        ENQUEUE,
        QUEUE_POSITION,
        ADMIT,
        WITHDRAW,
        REQUEUE,
        REMOVE_RECORD,
        TENANT_ADMIT,
    )
}


async def execute(pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
    """``pipe.execute``, with the commands that met NOSCRIPT loaded and sent again."""
    if connect.is_cluster_pipeline(pipe):
        replies = await _execute_cluster(pipe)
    else:
        sent = queued(pipe)
        replies = await pipe.execute(raise_on_error=False)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            shas = sorted({str(sent[i][0][1]) for i in missing})
            for sha in shas:
                pipe.script_load(_BY_SHA[sha].text)
            for i in missing:
                args, options = sent[i]
                pipe.execute_command(*args, **options)
            again = await pipe.execute(raise_on_error=False)
            for i, reply in zip(missing, again[len(shas) :], strict=True):
                replies[i] = reply
    if raise_on_error:
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed
    return replies


Command = tuple[tuple[Any, ...], Mapping[str, Any]]


def queued(pipe: Pipeline) -> list[Command]:
    """The commands queued in ``pipe``, either kind, as (arguments, options): what
    ``pipe.execute_command(*arguments, **options)`` queues again."""
    if connect.is_cluster_pipeline(pipe):
        # redis-py 7's ClusterPipeline holds its queue in its strategy (emptied by execute).
        strategy: Any = getattr(pipe, "_execution_strategy")  # noqa: B009 - not typed public
        return [(tuple(c.args), c.kwargs) for c in strategy._command_queue]
    return list(pipe.command_stack)  # (args, options) already: no copy on the hot path


def _resend(reply: Any) -> bool:
    return isinstance(
        reply, NoScriptError | redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
    )


async def _execute_cluster(pipe: Any) -> list[Any]:
    sent = queued(pipe)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for attempt in range(_CLUSTER_RESENDS):
        again = [i for i, reply in enumerate(replies) if _resend(reply)]
        if not again:
            break
        if any(isinstance(replies[i], NoScriptError) for i in again):
            for sha in sorted({str(sent[i][0][1]) for i in again if sent[i][0][0] == "EVALSHA"}):
                await pipe.cluster_client.script_load(_BY_SHA[sha].text)  # every primary
        else:
            await asyncio.sleep(_RESEND_PAUSE_SECONDS * (attempt + 1))
        for i in again:
            args, options = sent[i]
            pipe.execute_command(*args, **options)
        for i, reply in zip(again, await pipe.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    return replies
