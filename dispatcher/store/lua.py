"""The Lua scripts, sent as EVALSHA alone, in pipelines too.

redis-py's registered scripts ask the server ``SCRIPT EXISTS`` before every pipeline that holds
one: one more round trip on every submission, sidecar batch and consumer batch (11 % of the
dispatcher's CPU per submission, profiled with py-spy). Here a pipeline carries EVALSHA only. A
NOSCRIPT reply (Redis restarted or its script cache was flushed) means that command did not
run: the scripts are loaded and the commands that met it are sent again, in their order.
"""

import hashlib
from typing import Any

import redis.asyncio
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from wire import scripts


class Lua:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)

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
    )
}


async def execute(pipe: Pipeline, *, raise_on_error: bool = True) -> list[Any]:
    """``pipe.execute``, with the commands that met NOSCRIPT loaded and sent again."""
    sent = [args for args, _options in pipe.command_stack]
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        shas = sorted({str(sent[i][1]) for i in missing})
        for sha in shas:
            pipe.script_load(_BY_SHA[sha].text)
        for i in missing:
            pipe.execute_command(*sent[i])
        again = await pipe.execute(raise_on_error=False)
        for i, reply in zip(missing, again[len(shas) :], strict=True):
            replies[i] = reply
    if raise_on_error:
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed
    return replies
