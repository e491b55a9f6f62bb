"""Which local evaluations a dispatcher process holds, so that the next one can end them if it
dies.

A local evaluation's processes die with their dispatcher (parent-death signal), and its sidecar
hands its events to that very dispatcher's ingest endpoint, which is gone with it: nothing is
left to publish a terminal event, and no reconciler exists to notice, as the Kubernetes
backend's does. So each backend notes what it holds in one Redis hash (owner: this module)::

    crucible:local:inflight   eval_id -> "hostname pid" of the dispatcher process holding it

and a starting backend ends the entries of dispatcher processes on this host that are gone with
an (unverified) ``error`` event. It is unverified on purpose: if a terminal event came first
(the sidecar delivered it in time), that one stands.
"""

import logging
import os
import socket

import redis.asyncio
import redis.exceptions

from dispatcher.store import connect, layout, publish
from wire import events

log = logging.getLogger(__name__)

LOST_REASON = "lost: the dispatcher running it exited before it ended"


def owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


class InFlight:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._owner = owner()
        self._space = connect.keyspace(client)

    def _key(self, eval_id: str) -> str:
        # The evaluation's partition: the record's creation writes the entry in its step.
        return self._space.local_inflight(self._space.partition(eval_id))

    async def add(self, eval_id: str) -> None:
        await self._client.hset(self._key(eval_id), eval_id, self._owner)  # type: ignore[misc]

    def entry(self, eval_id: str) -> layout.QueueEntry:
        """``add`` as the entry the record's creation writes (``backends.reserve``)."""
        return layout.QueueEntry(self._key(eval_id), eval_id, self._owner)

    async def remove(self, eval_id: str) -> None:
        """Best effort: a stale entry only means one redundant ``error`` event later, which the
        store ignores once the record has ended."""
        try:
            await self._client.hdel(self._key(eval_id), eval_id)  # type: ignore[misc]
        except redis.exceptions.RedisError as e:
            log.warning("could not clear in-flight entry of %s: %s", eval_id, e)

    async def end_orphans(self, publisher: publish.Publisher) -> list[str]:
        """End the evaluations of dead dispatcher processes on this host; their ids."""
        host = socket.gethostname()
        ended = []
        held: dict[bytes, bytes] = {}
        for partition in self._space.all_partitions():
            key = self._space.local_inflight(partition)
            held |= await self._client.hgetall(key)  # type: ignore[misc]
        for raw_id, raw_owner in held.items():
            eval_id, holder = _text(raw_id), _text(raw_owner)
            holder_host, _, pid = holder.rpartition(" ")
            if holder_host != host or not pid.isdigit() or _alive(int(pid)):
                continue
            event = events.Event(
                eval_id=eval_id,
                type=events.EventType.ERROR,
                source="dispatcher",
                reason=LOST_REASON,
            )
            await publisher.publish(event, token="lost")
            await self._client.hdel(self._key(eval_id), eval_id)  # type: ignore[misc]
            ended.append(eval_id)
        if ended:
            log.warning("ended %d evaluations of a dispatcher that exited: %s", len(ended), ended)
        return ended


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
