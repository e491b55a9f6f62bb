"""The one function that puts an event into Redis: ``wire/publish.lua``, run by the dispatcher.

Sidecars hand their events to the dispatcher (``dispatcher.api.ingest``); the dispatcher's own
events (accepted, scheduled, verdicts, cancels) come from the API, the backends and the reconciler.
Either way the two XADDs, the legacy PUBLISH and the seq counter change together or not at all,
and a producer that retries after a lost reply passes the same ``token`` and gets the first
result back instead of a second copy.
"""

import dataclasses

import redis.asyncio
from redis.asyncio.client import Pipeline

from dispatcher.store import connect, lua
from wire import events, limits


@dataclasses.dataclass(frozen=True)
class Published:
    seq: int
    stream_id: str
    legacy_published: bool
    duplicate: bool
    # Over the producer's byte budget: nothing was stored.
    dropped: bool = False


class Publisher:
    """Publishes events through the script; one per Redis client."""

    def __init__(
        self, client: redis.asyncio.Redis, stream_limits: limits.StreamLimits | None = None
    ) -> None:
        self._client = client
        self._limits = stream_limits or limits.StreamLimits()
        self._space = connect.keyspace(client)

    async def publish(
        self, event: events.Event, *, token: str = "", budget: bool = False
    ) -> Published:
        """``budget``: count the event against its evaluation's byte budget (a pod's events)."""
        (raw,) = await self.publish_many([(event, token)], budget=budget)
        return raw

    def queue(
        self, pipe: Pipeline, event: events.Event, *, token: str = "", if_exists: str = ""
    ) -> None:
        """Add the publish to ``pipe`` (another part's round trip); its reply is the caller's.
        ``if_exists``: publish only if that key exists when the script runs (else dropped)."""
        script_keys = self._keys(event) + ([if_exists] if if_exists else [])
        lua.PUBLISH.queue(pipe, script_keys, self._args(event, token, False))

    async def publish_many(
        self, batch: list[tuple[events.Event, str]], *, budget: bool = False
    ) -> list[Published]:
        """Publish events in order in one round trip (a sidecar's batch)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for event, token in batch:
                lua.PUBLISH.queue(pipe, self._keys(event), self._args(event, token, budget))
            replies = await lua.execute(pipe)
        return [_published(reply) for reply in replies]

    def _keys(self, event: events.Event) -> list[str]:
        space = self._space
        return [
            space.eval_stream(event.eval_id),
            space.global_stream(space.partition(event.eval_id)),
            space.publish_meta(event.eval_id),
        ]

    def _args(self, event: events.Event, token: str, budget: bool) -> list[str | int]:
        channel = events.LEGACY_CHANNELS.get(event.type, "")
        return [
            token,
            event.body_json(),
            event.slim_json() or "",
            "1" if event.terminal else "0",
            channel,
            event.legacy_payload() or "",
            self._limits.eval_stream_maxlen,
            self._limits.global_stream_maxlen,
            self._limits.ttl_seconds,
            self._limits.eval_budget_bytes if budget else 0,
            event.verdict() if event.terminal else "",
            "1" if event.verified else "0",
        ]


def _published(reply: list[object]) -> Published:
    seq, stream_id, legacy, duplicate, dropped = reply
    return Published(
        seq=int(str(seq)),
        stream_id=stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id),
        legacy_published=bool(legacy),
        duplicate=bool(duplicate),
        dropped=bool(dropped),
    )
