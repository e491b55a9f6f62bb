"""Where events go in Redis, and the one function that puts them there.

Keys (one owner: this module)::

    crucible:events:{eval_id}   stream, the evaluation's own history (SSE replays it; the entry id
                                is the SSE event id), capped, expires with the evaluation
    crucible:events             stream, every evaluation's events; the dispatcher's consumer group
                                ``crucible:dispatchers`` feeds the status store from it
    crucible:pub:{eval_id}      hash, publish metadata: the seq counter, the first terminal seq,
                                and the dedup tokens of events already published
    evaluation:running|completed|failed   pub/sub channels of the original design

Every event is written by one Lua script (``publish.lua``), so the two XADDs, the PUBLISH and
the seq counter change together or not at all. A producer that retries after a lost reply
passes the same ``token`` and gets the first result back instead of a second copy.
"""

import dataclasses
import importlib.resources

import redis.asyncio

from sidecar import events

GLOBAL_STREAM = "crucible:events"
CONSUMER_GROUP = "crucible:dispatchers"
EVENT_FIELD = "event"

DEFAULT_EVAL_STREAM_MAXLEN = 20_000
DEFAULT_GLOBAL_STREAM_MAXLEN = 200_000
DEFAULT_TTL_SECONDS = 7 * 24 * 3600

_SCRIPT = importlib.resources.files("sidecar").joinpath("publish.lua").read_text()


def eval_stream(eval_id: str) -> str:
    return f"crucible:events:{eval_id}"


def publish_meta(eval_id: str) -> str:
    return f"crucible:pub:{eval_id}"


@dataclasses.dataclass(frozen=True)
class Limits:
    eval_stream_maxlen: int = DEFAULT_EVAL_STREAM_MAXLEN
    global_stream_maxlen: int = DEFAULT_GLOBAL_STREAM_MAXLEN
    ttl_seconds: int = DEFAULT_TTL_SECONDS


@dataclasses.dataclass(frozen=True)
class Published:
    seq: int
    stream_id: str
    legacy_published: bool
    duplicate: bool


class Publisher:
    """Publishes events through the script; one per Redis client."""

    def __init__(self, client: redis.asyncio.Redis, limits: Limits = Limits()) -> None:
        self._script = client.register_script(_SCRIPT)
        self._limits = limits

    async def publish(self, event: events.Event, *, token: str = "") -> Published:
        channel = events.LEGACY_CHANNELS.get(event.type, "")
        payload = event.legacy_payload() or ""
        raw = await self._script(
            keys=[eval_stream(event.eval_id), GLOBAL_STREAM, publish_meta(event.eval_id)],
            args=[
                token,
                event.body_json(),
                "1" if event.terminal else "0",
                channel,
                payload,
                self._limits.eval_stream_maxlen,
                self._limits.global_stream_maxlen,
                self._limits.ttl_seconds,
            ],
        )
        seq, stream_id, legacy, duplicate = raw
        return Published(
            seq=int(seq),
            stream_id=stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id),
            legacy_published=bool(legacy),
            duplicate=bool(duplicate),
        )
