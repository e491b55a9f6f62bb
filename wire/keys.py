"""Every Redis key and pub/sub channel name crucible uses; nothing else spells one.

    crucible:eval:{eval_id}     hash, the evaluation record; every value is JSON text; expires
                                after the record TTL (``create_record.lua``, ``apply_event.lua``)
    crucible:evals              sorted set of every eval_id, score created_at (listing)
    crucible:evals:{status}     sorted set per status, same scores (listing with a filter)
    crucible:tenant:{tenant}:evals[:{status}]   the same two, of one tenant's evaluations
    crucible:tenants            set of the tenants that have submitted (pruning finds them there)
    crucible:tenant:{tenant}:bucket   hash, the tenant's submission rate bucket (tokens, at)
    crucible:events:{eval_id}   stream, the evaluation's own history (SSE replays it; the entry id
                                is the SSE event id), capped, expires with the evaluation
    crucible:events             stream of every evaluation's status events (no output, no tails:
                                bounded in bytes, not only in count); the dispatchers' consumer
                                group ``crucible:dispatchers`` feeds the status store from it
    crucible:pub:{eval_id}      hash, publish metadata: the seq counter, the first terminal seq and
                                verdict, bytes a producer has used, and the dedup tokens
    crucible:kube:cancel:{eval_id}  string, a cancel's tombstone (the Kubernetes backend)
    crucible:{queue}:...        the Kubernetes backend's admission queue, one hash tag so that
                                its scripts touch one Redis Cluster slot (``wire/admission``):
      :order                    sorted set of every queued eval_id, score its arrival number
      :arrivals                 counter, the last arrival number given
      :tenant:{tenant}          sorted set of one tenant's queued eval_ids, same scores
      :turns                    list of the tenants with queued evaluations, in serving order
      :specs                    hash, eval_id -> the submission to create its Job from (JSON)
      :admitted[:{tenant}]      sorted set of the admitted evaluations not yet ended (all, and
                                one tenant's), score the admission time; an end removes them
                                (``apply_event.lua``)
    crucible:epoch              string, present in a Redis that has kept its data: a Redis
                                without it lost everything (records are rebuilt from Jobs)
    crucible:local:inflight     hash, the local backend's running evaluations and their owners
    evaluation:running|completed|failed   pub/sub channels of the original design

Only the dispatcher writes any of them: sidecars hand their events to it (``wire.ingest``).
"""

RECORD_PREFIX = "crucible:eval:"
INDEX = "crucible:evals"
TENANTS = "crucible:tenants"
GLOBAL_STREAM = "crucible:events"
CONSUMER_GROUP = "crucible:dispatchers"
EVENT_FIELD = "event"
# Field of a global-stream entry naming the full event's id in the evaluation's stream.
FULL_EVENT_FIELD = "full"

LOCAL_INFLIGHT = "crucible:local:inflight"
EPOCH = "crucible:epoch"

QUEUE_PREFIX = "crucible:{queue}:"
QUEUE_ORDER = QUEUE_PREFIX + "order"
QUEUE_ARRIVALS = QUEUE_PREFIX + "arrivals"
QUEUE_TURNS = QUEUE_PREFIX + "turns"
QUEUE_SPECS = QUEUE_PREFIX + "specs"
# The admission scripts name a tenant's keys themselves (they serve every tenant in one step):
# these prefixes + the tenant.
QUEUE_TENANT_PREFIX = QUEUE_PREFIX + "tenant:"
ADMITTED = QUEUE_PREFIX + "admitted"
ADMITTED_TENANT_PREFIX = ADMITTED + ":"

LEGACY_RUNNING = "evaluation:running"
LEGACY_COMPLETED = "evaluation:completed"
LEGACY_FAILED = "evaluation:failed"


def record_key(eval_id: str) -> str:
    return f"{RECORD_PREFIX}{eval_id}"


def status_index(status: str) -> str:
    return f"{INDEX}:{status}"


def tenant_index(tenant: str) -> str:
    return f"crucible:tenant:{tenant}:evals"


def tenant_status_index(tenant: str, status: str) -> str:
    return f"{tenant_index(tenant)}:{status}"


def tenant_bucket(tenant: str) -> str:
    return f"crucible:tenant:{tenant}:bucket"


def eval_stream(eval_id: str) -> str:
    return f"crucible:events:{eval_id}"


def publish_meta(eval_id: str) -> str:
    return f"crucible:pub:{eval_id}"


def tenant_queue(tenant: str) -> str:
    return QUEUE_TENANT_PREFIX + tenant


def tenant_admitted(tenant: str) -> str:
    return ADMITTED_TENANT_PREFIX + tenant


def cancel_tombstone(eval_id: str) -> str:
    return f"crucible:kube:cancel:{eval_id}"
