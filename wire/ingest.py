"""The sidecar -> dispatcher hop: how a sidecar hands its evaluation's events over.

Pods hold no Redis credential at all. A sidecar POSTs batches of events to the dispatcher::

    POST /ingest/v1/evaluations/{eval_id}/events
    Authorization: Bearer <eval_token(key, eval_id)>
    {"events": [{"token": "<dedup token>", "event": {<Event without v and seq>}}, ...]}

    200 {"results": [{"seq": 3, "id": "1700000000000-0", "duplicate": false,
                      "dropped": false}, ...]}   (dropped: over the evaluation's byte budget)
    401 wrong credential for this evaluation; 422 an event that breaks the contract (nothing
    of the batch is published); 503 + Retry-After: Redis unavailable or full, retry the same
    batch (the dedup tokens make a retry harmless).

The credential is an HMAC of the evaluation id under a key only dispatchers hold, so whatever
one pod holds is good for its own evaluation alone; the dispatcher forces ``eval_id``,
``source`` and ``verified`` and accepts only the types a sidecar produces.
"""

import hashlib
import hmac

import pydantic

from wire import events, ingest_route, limits

ROUTE = ingest_route.ROUTE
path = ingest_route.path
_CONTEXT = b"crucible-ingest-v1\x00"
# Event types a sidecar may publish: never accepted/scheduled/pending/cancelled (the
# dispatcher's), and never a verified verdict.
SIDECAR_TYPES = frozenset(
    {
        events.EventType.RUNNING,
        events.EventType.OUTPUT,
        events.EventType.COMPLETED,
        events.EventType.FAILED,
        events.EventType.TIMEOUT,
        events.EventType.ERROR,
    }
)
# Dedup tokens of sidecar events live in their own namespace, apart from the dispatcher's.
TOKEN_PREFIX = "sidecar:"


def eval_token(key: bytes, eval_id: str) -> str:
    """The credential of one evaluation's sidecar."""
    return hmac.new(key, _CONTEXT + eval_id.encode("utf-8"), hashlib.sha256).hexdigest()


def token_matches(key: bytes, eval_id: str, presented: str) -> bool:
    return hmac.compare_digest(eval_token(key, eval_id).encode(), presented.encode())


class Item(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    token: str = pydantic.Field(min_length=1, max_length=128)
    event: events.Event


class Batch(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    events: list[Item] = pydantic.Field(min_length=1, max_length=limits.INGEST_BATCH_MAX_EVENTS)
