"""apply_event.lua against the pure rules of dispatcher.statuses, on a real Redis server.

The pure rules are the statement; the script must reach exactly the same record for any
sequence of events, including replays, out-of-order and conflicting verdicts."""

import json
import uuid
from typing import Any

import hypothesis
import pytest
import redis
from hypothesis import strategies as st

from dispatcher.store import layout, records, store
from tests import redisproc
from tests import status_model as statuses
from wire import events, keys, scripts

pytestmark = pytest.mark.integration

# These tests hold the scripts to the rules on one server (a cluster runs the same scripts).
ONE = keys.STANDALONE

SCRIPT = scripts.APPLY_EVENT
CREATE = scripts.CREATE_RECORD

_event = st.fixed_dictionaries(
    {
        "seq": st.integers(1, 10),
        "type": st.sampled_from(list(events.EventType)),
        "source": st.sampled_from(["sidecar", "dispatcher"]),
        "verified": st.sampled_from([None, False, True]),
        "exit_code": st.sampled_from([None, 0, 1, 137, 143]),
        "signal": st.sampled_from([None, 9, 15]),
        "reason": st.sampled_from([None, "OOMKilled", "DeadlineExceeded", "ImagePullBackOff"]),
        "job_name": st.sampled_from([None, "job-a"]),
        "position": st.sampled_from([None, 1, 7]),
        "started_at": st.sampled_from([None, 1.5]),
        "output": st.sampled_from([None, "", "tail ✓"]),
        "error": st.sampled_from([None, "", "Traceback ✗"]),
        "truncated": st.sampled_from([None, False, True]),
        "duration_seconds": st.sampled_from([None, 0.25]),
        "ts": st.floats(1e9, 2e9),
    }
)


def new_record(eval_id: str) -> records.Record:
    return records.Record(
        eval_id=eval_id,
        status=records.Status.ACCEPTED,
        backend="local",
        image="python:3.11-slim",
        command=["python", "-c", "1"],
        timeout_seconds=5,
        resources=records.Resources(cpu="500m", memory="512Mi"),
        created_at=1_700_000_000.25,
        request_digest="d",
    )


def lua_apply(
    client: redis.Redis, record: records.Record, sequence: list[events.Event]
) -> dict[str, Any]:
    create, apply = client.register_script(CREATE), client.register_script(SCRIPT)
    key = ONE.record(record.eval_id)
    args = store.Store(client, ttl_seconds=60).create_args(record, '"n"')  # type: ignore[arg-type]
    create(keys=layout.create_keys(ONE, record), args=args)
    for event in sequence:
        apply(keys=layout.status_keys(ONE, event.eval_id), args=layout.event_args(event))
    fields = layout.decode_fields(client.hgetall(key))
    fields.pop("creation_nonce")
    return fields


def pure_apply(record: records.Record, sequence: list[events.Event]) -> dict[str, Any]:
    fields = json.loads(record.model_dump_json(exclude_none=True))
    for event in sequence:
        changes = statuses.transition(fields, event)
        if changes is not None:
            fields = statuses.applied(fields, changes)
    return fields


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(raw=st.lists(_event, min_size=1, max_size=8), in_order=st.booleans())
def test_script_reaches_the_same_record_as_the_pure_rules(
    redis_server: redisproc.RedisProcess, raw: list[dict[str, Any]], in_order: bool
):
    if in_order:  # as producers publish; otherwise replays and stale events are mixed in
        raw = sorted(raw, key=lambda e: int(e["seq"]))
    eval_id = uuid.uuid4().hex
    sequence = [
        events.Event(eval_id=eval_id, **{k: v for k, v in e.items() if v is not None}) for e in raw
    ]
    record = new_record(eval_id)
    with redis.Redis.from_url(redis_server.url) as client:
        from_lua = lua_apply(client, record, sequence)
        expected = pure_apply(record, sequence)
        assert from_lua == expected
        # The record sits in exactly one status index: its own.
        homes = [k for k in layout.status_indexes(ONE, 0) if client.zscore(k, eval_id) is not None]
        assert homes == [ONE.status_index(0, expected["status"])]
        client.delete(ONE.record(eval_id))


_verified_verdict = st.fixed_dictionaries(
    {
        "type": st.sampled_from([t for t in events.EventType if t in events.TERMINAL_TYPES]),
        "source": st.just("dispatcher"),
        "verified": st.just(True),
        "exit_code": st.sampled_from([None, 0, 1, 137]),
        "signal": st.sampled_from([None, 9]),
        "reason": st.sampled_from([None, "OOMKilled", "DeadlineExceeded"]),
        "duration_seconds": st.sampled_from([None, 2.0]),
    }
)
_sidecar_end = st.fixed_dictionaries(
    {
        "type": st.sampled_from([t for t in events.EventType if t in events.TERMINAL_TYPES]),
        "source": st.just("sidecar"),
        "verified": st.sampled_from([None, False]),
        "exit_code": st.sampled_from([None, 0, 1, 137]),
        "signal": st.sampled_from([None, 9, 15]),
        "reason": st.sampled_from([None, "timeout after 1s"]),
        "started_at": st.sampled_from([None, 1.5]),
        "output": st.sampled_from([None, "", "tail ✓"]),
        "error": st.sampled_from([None, "", "Traceback ✗"]),
        "truncated": st.sampled_from([None, False, True]),
        "duration_seconds": st.sampled_from([None, 0.25]),
    }
)
_late_running = st.fixed_dictionaries(
    {
        "type": st.just(events.EventType.RUNNING),
        "source": st.just("sidecar"),
        "started_at": st.sampled_from([None, 1.25]),
    }
)


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(
    before=st.lists(_late_running | _sidecar_end, max_size=1),
    first=_verified_verdict,
    after=st.lists(_sidecar_end | _late_running | _verified_verdict, min_size=1, max_size=3),
)
def test_script_fills_in_like_the_pure_rules_when_the_verified_verdict_comes_first(
    redis_server: redisproc.RedisProcess,
    before: list[dict[str, Any]],
    first: dict[str, Any],
    after: list[dict[str, Any]],
):
    """The order a plain sidecar on Kubernetes always produces: the reconciler's verified
    verdict, then the sidecar's own end (and possibly its late ``running``)."""
    eval_id = uuid.uuid4().hex
    sequence = [
        events.Event(
            eval_id=eval_id, seq=seq, ts=1e9 + seq, **{k: v for k, v in e.items() if v is not None}
        )
        for seq, e in enumerate([*before, first, *after], start=1)
    ]
    record = new_record(eval_id)
    with redis.Redis.from_url(redis_server.url) as client:
        from_lua = lua_apply(client, record, sequence)
        expected = pure_apply(record, sequence)
        assert from_lua == expected
        client.delete(ONE.record(eval_id))


def verdict(eval_id: str, seq: int, kind: str, **fields: Any) -> events.Event:
    fields.setdefault("source", "sidecar")
    return events.Event(eval_id=eval_id, seq=seq, type=events.EventType(kind), **fields)


def test_oom_verdict_after_sidecar_completed_corrects_status_and_fields(
    redis_server: redisproc.RedisProcess,
):
    sequence = [
        verdict("oom", 1, "running", started_at=1.0),
        verdict("oom", 2, "completed", exit_code=0),
        verdict(
            "oom",
            3,
            "failed",
            exit_code=137,
            reason="OOMKilled",
            source="dispatcher",
            verified=True,
        ),
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("oom"))
        record = lua_apply(client, new_record("oom"), sequence)
    assert record["status"] == "failed"
    assert (record["exit_code"], record["reason"], record["verified"]) == (137, "OOMKilled", True)
    assert (
        record["correction"]
        == "status completed -> failed, exit_code 0 -> 137, reason none -> OOMKilled"
    )


def test_replayed_and_stale_events_change_nothing(redis_server: redisproc.RedisProcess):
    sequence = [
        verdict("rp", 2, "running", started_at=1.0),
        verdict("rp", 3, "completed", exit_code=0),
        verdict("rp", 3, "completed", exit_code=0),
        verdict("rp", 1, "accepted", source="dispatcher"),
        verdict("rp", 2, "failed", exit_code=9, source="dispatcher", verified=True),
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("rp"))
        record = lua_apply(client, new_record("rp"), sequence)
    assert (record["status"], record["exit_code"], record["last_seq"]) == ("completed", 0, 3)
    assert record["verified"] is False


def test_late_scheduled_records_job_name_without_moving_status_back(
    redis_server: redisproc.RedisProcess,
):
    sequence = [
        verdict("late", 3, "running", started_at=1.0),
        verdict("late", 4, "scheduled", job_name="job-late", source="dispatcher"),
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("late"))
        record = lua_apply(client, new_record("late"), sequence)
    assert (record["status"], record["job_name"]) == ("running", "job-late")
    assert "scheduled_at" in record


def test_cancelled_stays_cancelled_and_only_gains_missing_exit_code(
    redis_server: redisproc.RedisProcess,
):
    confirm = {"source": "dispatcher", "verified": True, "exit_code": 143, "signal": 15}
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("cx1"), ONE.record("cx2"))
        bare = lua_apply(
            client,
            new_record("cx1"),
            [
                verdict("cx1", 1, "cancelled", source="dispatcher"),
                verdict("cx1", 2, "failed", **confirm),
            ],
        )
        known = lua_apply(
            client,
            new_record("cx2"),
            [
                verdict("cx2", 1, "cancelled", source="dispatcher", exit_code=130),
                verdict("cx2", 2, "failed", **confirm),
            ],
        )
    assert (bare["status"], bare["exit_code"], bare["signal"]) == ("cancelled", 143, 15)
    assert (known["status"], known["exit_code"], known["verified"]) == ("cancelled", 130, True)
    assert "correction" not in bare
    assert "correction" not in known


def test_sidecar_end_after_the_verified_verdict_fills_in_what_the_verdict_lacks(
    redis_server: redisproc.RedisProcess,
):
    sequence = [
        verdict(
            "vf",
            1,
            "failed",
            exit_code=137,
            signal=9,
            reason="OOMKilled",
            source="dispatcher",
            verified=True,
        ),
        verdict(
            "vf",
            2,
            "failed",
            exit_code=1,
            signal=15,
            reason="wrapper says so",
            duration_seconds=3.25,
            output="out ✓",
            error="err",
            truncated=True,
            started_at=1.5,
        ),
        verdict("vf", 3, "running", started_at=1.0),
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("vf"))
        record = lua_apply(client, new_record("vf"), sequence)
    assert record == pure_apply(new_record("vf"), sequence)
    assert (record["status"], record["exit_code"], record["signal"], record["reason"]) == (
        "failed",
        137,
        9,
        "OOMKilled",
    )
    assert record["verified"] is True
    assert "correction" not in record
    assert (record["output"], record["error"], record["truncated"]) == ("out ✓", "err", True)
    assert (record["duration_seconds"], record["started_at"], record["last_seq"]) == (3.25, 1.5, 3)


def test_late_running_after_the_end_fills_in_a_missing_started_at(
    redis_server: redisproc.RedisProcess,
):
    sequence = [
        verdict("lr", 1, "completed", exit_code=0, source="dispatcher", verified=True),
        verdict("lr", 2, "running", started_at=1.0),
    ]
    with redis.Redis.from_url(redis_server.url) as client:
        client.delete(ONE.record("lr"))
        record = lua_apply(client, new_record("lr"), sequence)
    assert (record["status"], record["started_at"]) == ("completed", 1.0)
