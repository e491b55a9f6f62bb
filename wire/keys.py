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
                                (``apply_event.lua``; on a Redis Cluster the step after it)
    crucible:epoch              string, present in a Redis that has kept its data: a Redis
                                without it lost everything (records are rebuilt from Jobs)
    crucible:local:inflight     hash, the local backend's running evaluations and their owners
    evaluation:running|completed|failed   pub/sub channels of the original design

On a Redis Cluster (``Keyspace``) every key above but the queue's and the epoch carries its
partition's hash tag, ``crucible:{N}:eval:{eval_id}`` and so on, one global stream per
partition; a tenant's bucket, and the set of its evaluations not yet ended that its limit
counts, are ``crucible:{t:<tenant>}:bucket`` and ``crucible:{t:<tenant>}:active``.

Only the dispatcher writes any of them: sidecars hand their events to it (``wire.ingest``).
"""

import binascii
import dataclasses
import zlib

CONSUMER_GROUP = "crucible:dispatchers"
EVENT_FIELD = "event"
# Field of a global-stream entry naming the full event's id in the evaluation's stream.
FULL_EVENT_FIELD = "full"

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


def tenant_queue(tenant: str) -> str:
    return QUEUE_TENANT_PREFIX + tenant


def tenant_admitted(tenant: str) -> str:
    return ADMITTED_TENANT_PREFIX + tenant


# Partitions of a Redis Cluster keyspace: each evaluation's keys share one hash tag, its
# partition's, so every script touches one slot; the partitions spread over the masters.
CLUSTER_PARTITIONS = 16


@dataclasses.dataclass(frozen=True)
class Keyspace:
    """Where the evaluation keys live. One partition (a single Redis, Sentinel's master): the
    names above, as they always were. Several (Redis Cluster): the same names with the
    partition's hash tag after ``crucible:`` (``crucible:{13}:eval:<id>``), an evaluation in
    partition ``crc32(eval_id) % partitions`` with its record, streams and the partition's
    indexes and global stream; a tenant's limits under its own tag (``crucible:{t:<tenant>}:``),
    checked in a step of their own (``wire/tenant_admit.lua``).

    Partition N's tag is the first number whose hash slot lies in the N-th of ``partitions``
    equal shares of the 16384 slots, so the partitions spread over the masters as evenly as
    the masters share the slots (the tags 0..15 would put 6, 6 and 4 on three masters)."""

    partitions: int = 1
    tags: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _spread_tags(self.partitions))

    @property
    def partitioned(self) -> bool:
        return self.partitions > 1

    def partition(self, eval_id: str) -> int:
        if self.partitions == 1:
            return 0
        return zlib.crc32(eval_id.encode()) % self.partitions

    def all_partitions(self) -> range:
        return range(self.partitions)

    def _at(self, partition: int) -> str:
        return "crucible:" if self.partitions == 1 else f"crucible:{{{self.tags[partition]}}}:"

    def _of(self, eval_id: str) -> str:
        return self._at(self.partition(eval_id))

    # One evaluation's keys.
    def record(self, eval_id: str) -> str:
        return f"{self._of(eval_id)}eval:{eval_id}"

    def eval_stream(self, eval_id: str) -> str:
        return f"{self._of(eval_id)}events:{eval_id}"

    def publish_meta(self, eval_id: str) -> str:
        return f"{self._of(eval_id)}pub:{eval_id}"

    def cancel_tombstone(self, eval_id: str) -> str:
        return f"{self._of(eval_id)}kube:cancel:{eval_id}"

    # One partition's keys (an evaluation's: ``partition(eval_id)``).
    def index(self, partition: int) -> str:
        return f"{self._at(partition)}evals"

    def status_index(self, partition: int, status: str) -> str:
        return f"{self.index(partition)}:{status}"

    def tenant_index(self, partition: int, tenant: str) -> str:
        return f"{self._at(partition)}tenant:{tenant}:evals"

    def tenant_status_index(self, partition: int, tenant: str, status: str) -> str:
        return f"{self.tenant_index(partition, tenant)}:{status}"

    def tenants(self, partition: int) -> str:
        return f"{self._at(partition)}tenants"

    def global_stream(self, partition: int) -> str:
        return f"{self._at(partition)}events"

    def local_inflight(self, partition: int) -> str:
        return f"{self._at(partition)}local:inflight"

    # A tenant's limits.
    def tenant_bucket(self, tenant: str) -> str:
        if self.partitions == 1:
            return f"crucible:tenant:{tenant}:bucket"
        return f"crucible:{{t:{tenant}}}:bucket"

    def tenant_active(self, tenant: str) -> str:
        """Partitioned only: the tenant's evaluations not yet ended (sorted set, score the
        creation time); one partition counts them in its status indexes."""
        return f"crucible:{{t:{tenant}}}:active"


def _spread_tags(partitions: int) -> tuple[str, ...]:
    tags: list[str | None] = [None] * partitions
    number = 0
    while None in tags:
        share = hash_slot(str(number)) * partitions // SLOTS
        if tags[share] is None:
            tags[share] = str(number)
        number += 1
    return tuple(t for t in tags if t is not None)


def hash_slot(tag: str) -> int:
    """Redis Cluster's slot of a key whose hash tag is ``tag`` (CRC16-CCITT, mod 16384)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


SLOTS = 16384
STANDALONE = Keyspace()
CLUSTER = Keyspace(CLUSTER_PARTITIONS)
