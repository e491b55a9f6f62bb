"""Round trips coalesced: the pipelines queued in one turn of the event loop go as one.

Under load, the requests whose bytes arrived together run their handlers in the same turn of
the event loop; each would check a connection out of the pool, write its pipeline (a system
call) and wait for its own reply. Here the first pipeline of a turn schedules a flush for the
end of that turn and the others join it: one connection, one write and one read for all, each
caller getting its own replies (errors included, as ``raise_on_error=False`` gives them). The
commands keep their order; they never run as a transaction, which the callers never asked for.
A connection error fails every caller of the batch (after the client's own retries): each
decides, as it would have for its own pipeline.
"""

import asyncio
from typing import Any

import redis.asyncio
from redis.asyncio.client import Pipeline

from dispatcher.store import lua

_Queued = tuple[list[lua.Command], asyncio.Future[list[Any]]]


class Coalescer:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._queued: list[_Queued] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """The replies of ``pipe``'s commands (``pipe`` itself is not executed: its commands
        join this turn's batch)."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append((lua.queued(pipe), future))
        if len(self._queued) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)  # the loop keeps weak references to tasks only
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Queued]) -> None:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for stack, _ in batch:
                    for args, options in stack:
                        pipe.execute_command(*args, **options)
                replies = await lua.execute(pipe, raise_on_error=False)
        except BaseException as e:
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(e, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        start = 0
        for stack, future in batch:
            if not future.done():
                future.set_result(replies[start : start + len(stack)])
            start += len(stack)
