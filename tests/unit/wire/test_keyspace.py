"""The keyspace: one server's names unchanged, a cluster's partitions spread and each
evaluation's keys on one slot."""

import re

import pytest

from wire import keys

SPACE = keys.CLUSTER


def slot_of(key: str) -> int:
    tag = re.search(r"\{([^}]*)\}", key)
    assert tag is not None, key
    return keys.hash_slot(tag.group(1))


def test_one_server_keeps_the_names_of_the_contract() -> None:
    one = keys.STANDALONE
    assert one.record("t~e") == "crucible:eval:t~e"
    assert one.eval_stream("t~e") == "crucible:events:t~e"
    assert one.global_stream(one.partition("t~e")) == "crucible:events"
    assert one.tenant_bucket("t") == "crucible:tenant:t:bucket"


def test_each_partition_holds_its_share_of_the_slots() -> None:
    share = keys.SLOTS // SPACE.partitions
    assert [keys.hash_slot(tag) // share for tag in SPACE.tags] == list(SPACE.all_partitions())
    # Three masters with equal slot ranges (redis-cli's split) get 5, 6 and 5 partitions.
    thirds = [keys.hash_slot(tag) * 3 // keys.SLOTS for tag in SPACE.tags]
    assert sorted(thirds.count(m) for m in range(3)) == [5, 5, 6]


@pytest.mark.parametrize("eval_id", ["a", "acme~run-7", "x" * 64])
def test_an_evaluations_keys_share_a_slot_with_its_partitions_indexes(eval_id: str) -> None:
    at = SPACE.partition(eval_id)
    tenant = eval_id.split("~")[0] if "~" in eval_id else "default"
    found = {
        slot_of(key)
        for key in (
            SPACE.record(eval_id),
            SPACE.eval_stream(eval_id),
            SPACE.publish_meta(eval_id),
            SPACE.cancel_tombstone(eval_id),
            SPACE.index(at),
            SPACE.status_index(at, "running"),
            SPACE.tenant_index(at, tenant),
            SPACE.tenant_status_index(at, tenant, "queued"),
            SPACE.tenants(at),
            SPACE.global_stream(at),
            SPACE.local_inflight(at),
        )
    }
    assert len(found) == 1
    assert slot_of(SPACE.tenant_active(tenant)) == slot_of(SPACE.tenant_bucket(tenant))
