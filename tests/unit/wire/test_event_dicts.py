"""``wire.event_dicts`` (stdlib, used by the sidecar) against ``wire.events.Event`` (pydantic, the
one owner of the schema): the same names and rules, and every dict the sidecar can produce
validates against ``Event`` and round-trips through it unchanged."""

import json
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar import builders, publisher
from wire import event_dicts, events, ingest, ingest_route, limits

# What ``sidecar.settings`` lets through as an evaluation id.
EVAL_IDS = st.text(min_size=1, max_size=256)
# Whatever JSON a wrapper's record could hold, valid or not.
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
)
EXIT_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "exit_code": st.one_of(st.integers(-(2**40), 2**40), JSON_VALUES),
        "signal": st.one_of(st.none(), st.integers(0, 64), JSON_VALUES),
        "timed_out": st.one_of(st.booleans(), JSON_VALUES),
        "duration_seconds": st.one_of(st.floats(min_value=0), JSON_VALUES),
        "stdout_truncated": st.one_of(st.booleans(), JSON_VALUES),
        "stderr_truncated": st.one_of(st.booleans(), JSON_VALUES),
        "wrapper_error": st.one_of(st.none(), st.text(max_size=2000), JSON_VALUES),
        "timeout_seconds": st.one_of(st.none(), st.floats(min_value=0), JSON_VALUES),
        "finished_at": JSON_VALUES,
        "unknown": JSON_VALUES,
    },
)


def assert_round_trips(event: dict[str, Any]) -> None:
    """What the dispatcher does with it (parse the JSON with ``Event``) accepts it, and the
    model gives back the same event: nothing coerced, cut, added or dropped."""
    body = event_dicts.body_json(event)
    model = events.Event.model_validate_json(body)
    assert json.loads(body) == event
    assert json.loads(model.body_json()) == event
    assert events.Event.model_validate(event) == model
    assert model.terminal == event_dicts.is_terminal(event)
    assert model.verdict() == event_dicts.verdict(event)
    encoded = publisher.encode(event, "token")
    batch = ingest.Batch.model_validate_json(publisher.batch_body([encoded]))
    assert batch.events[0].event == model


@given(EVAL_IDS, st.one_of(st.fixed_dictionaries({"started_at": JSON_VALUES}), st.just({})))
def test_every_running_event_validates_and_round_trips(eval_id: str, started: Any) -> None:
    assert_round_trips(builders.running_event(eval_id, started))


@given(
    EVAL_IDS,
    st.sampled_from(builders.STREAMS),
    st.integers(min_value=0, max_value=2**40),
    st.text(max_size=300),
)
def test_every_output_event_validates_and_round_trips(
    eval_id: str, stream: builders.Stream, offset: int, data: str
) -> None:
    assert_round_trips(builders.output_event(eval_id, stream, offset, data))


@settings(max_examples=400)
@given(EVAL_IDS, EXIT_RECORDS, st.text(max_size=100), st.text(max_size=100), st.booleans())
def test_every_terminal_event_validates_and_round_trips(
    eval_id: str, record: dict[str, Any], output: str, error: str, truncated: bool
) -> None:
    event = builders.terminal_event(
        eval_id, record, output=output, error=error, truncated=truncated
    )
    assert event["verified"] is False
    assert_round_trips(event)


def test_long_texts_are_cut_as_the_model_cuts_them() -> None:
    reason = "r" * (limits.REASON_LIMIT_CHARS + 50)
    big = "x" * (event_dicts.TAIL_LIMIT_CHARS + 10)
    record = {"exit_code": 1, "wrapper_error": reason}
    event = builders.terminal_event("ev", record, output=big, error=big)
    assert len(event["reason"]) == limits.REASON_LIMIT_CHARS
    assert_round_trips(event)
    model = events.Event(eval_id="ev", type="error", source="sidecar", reason=reason)
    assert model.reason == event["reason"]


def test_the_schema_is_the_model_s() -> None:
    fields = {n: f for n, f in events.Event.model_fields.items() if n not in ("v", "seq")}
    assert list(fields) == ["eval_id", "type", "ts", "source", *event_dicts.OPTIONAL_FIELDS]
    for name, kind in event_dicts.OPTIONAL_FIELDS.items():
        allowed = typing.get_args(fields[name].annotation)
        assert type(None) in allowed, name
        literal = [a for a in allowed if typing.get_origin(a) is typing.Literal]
        assert kind in allowed or literal, name
    stream_type = typing.get_args(fields["stream"].annotation)[0]
    assert set(typing.get_args(stream_type)) == event_dicts.STREAMS
    assert set(typing.get_args(events.Source)) == event_dicts.SOURCES
    assert {t.value for t in events.EventType} == event_dicts.TYPES
    assert {t.value for t in events.TERMINAL_TYPES} == event_dicts.TERMINAL_TYPES
    assert event_dicts.SCHEMA_VERSION == events.SCHEMA_VERSION
    assert (event_dicts.TAIL_LIMIT_CHARS, event_dicts.TAIL_READ_BYTES) == (
        events.TAIL_LIMIT_CHARS,
        events.TAIL_READ_BYTES,
    )


def test_a_dispatcher_event_validates_too() -> None:
    event = event_dicts.make("ev", event_dicts.SCHEDULED, "dispatcher", ts=5, job_name="j")
    assert event == {"eval_id": "ev", "type": "scheduled", "ts": 5.0, "source": "dispatcher"} | {
        "job_name": "j"
    }
    assert_round_trips(event)


@pytest.mark.parametrize(
    ("event_type", "source", "fields"),
    [
        ("finished", "sidecar", {}),
        ("running", "wrapper", {}),
        ("running", "sidecar", {"pid": 3}),
        ("output", "sidecar", {"stream": "stdin"}),
        ("output", "sidecar", {"offset": "3"}),
        ("output", "sidecar", {"offset": True}),
        ("completed", "sidecar", {"exit_code": 0.0}),
        ("completed", "sidecar", {"duration_seconds": float("nan")}),
        ("completed", "sidecar", {"truncated": 1}),
        ("running", "sidecar", {"ts": float("inf")}),
    ],
)
def test_make_refuses_what_the_model_does_not_publish(
    event_type: str, source: str, fields: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        event_dicts.make("ev", event_type, source, **fields)


@given(st.binary(max_size=64))
def test_tails_are_the_model_s(raw: bytes) -> None:
    assert event_dicts.tail_of_bytes(raw) == events.tail_of_bytes(raw)
    text = raw.decode("utf-8", "replace")
    assert event_dicts.tail(text, 5) == events.tail(text, 5)


@given(st.text(min_size=1, max_size=50))
def test_the_ingest_path_is_wire_ingest_s(eval_id: str) -> None:
    assert ingest_route.ROUTE == ingest.ROUTE
    assert ingest_route.path(eval_id) == ingest.path(eval_id)
