"""Small pure pieces: the metrics registry, output reassembly, the CLI's exit codes, cursors."""

from typing import Any

import pytest

from dispatcher import client, errors, metrics
from dispatcher.store import layout, output
from wire import keys, scripts


def test_registry_renders_counters_histograms_and_gauges():
    registry = metrics.Registry()
    counter = registry.counter("c_total", "A counter.")
    counter.inc(outcome='quo"te\\')
    counter.inc(2, outcome='quo"te\\')
    histogram = registry.histogram("h_seconds", "A histogram.", buckets=(0.1, 1.0))
    histogram.observe(0.05, route="/x")
    histogram.observe(0.5, route="/x")
    histogram.observe(5, route="/x")
    registry.gauge("g", "A gauge.", lambda: {(("state", "queued"),): 3})
    text = registry.render()
    assert 'c_total{outcome="quo\\"te\\\\"} 3' in text
    assert 'h_seconds_bucket{route="/x",le="0.1"} 1' in text
    assert 'h_seconds_bucket{route="/x",le="1"} 2' in text
    assert 'h_seconds_bucket{route="/x",le="+Inf"} 3' in text
    assert 'h_seconds_count{route="/x"} 3' in text
    assert 'h_seconds_sum{route="/x"} 5.55' in text
    assert 'g{state="queued"} 3' in text
    assert "# TYPE h_seconds histogram" in text


def test_registry_returns_the_existing_metric_and_refuses_a_kind_change():
    registry = metrics.Registry()
    assert registry.counter("x", "") is registry.counter("x", "")
    with pytest.raises(ValueError, match="different kinds"):
        registry.histogram("x", "")


def chunk(stream: str, offset: int, data: str) -> dict[str, object]:
    return {"stream": stream, "offset": offset, "data": data}


def test_output_is_ordered_by_offset_and_deduplicated():
    result = output.assemble(
        [
            chunk("stdout", 2, "c"),
            chunk("stdout", 0, "ab"),
            chunk("stdout", 0, "ab"),
            chunk("stderr", 0, "é"),
            chunk("stderr", 2, "!"),
        ]
    )
    assert result == output.Output(stdout="abc", stderr="é!", truncated=False)


def test_output_with_a_gap_or_missing_start_is_truncated():
    assert output.assemble([chunk("stdout", 0, "a"), chunk("stdout", 5, "b")]).truncated
    assert output.assemble([chunk("stderr", 3, "late")]).truncated
    assert output.assemble([], capped=True).truncated
    assert not output.assemble([]).truncated


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"type": "completed", "exit_code": 0}, 0),
        ({"type": "failed", "exit_code": 3}, 3),
        ({"type": "failed", "exit_code": 137}, 137),
        ({"type": "failed", "exit_code": 256}, 1),
        ({"type": "failed"}, 1),
        ({"type": "timeout", "exit_code": 143}, 124),
        ({"type": "cancelled"}, 130),
        ({"type": "error", "reason": "x"}, 1),
    ],
)
def test_watch_exit_code_follows_the_evaluation(event: dict[str, Any], code: int):
    assert client.exit_code(event["type"], event.get("exit_code")) == code


def test_cursor_round_trips_and_junk_is_invalid_request():
    cursor = layout.encode_cursor("id-1", 1700000000.123456)
    assert layout.decode_cursor(cursor) == (1700000000.123456, "id-1")
    with pytest.raises(errors.InvalidRequestError):
        layout.decode_cursor("!!not-base64")


def test_status_index_order_matches_the_script():
    text = scripts.APPLY_EVENT
    listed = text.split("local STATUSES = {")[1].split("}")[0]
    names = [part.strip().strip("'") for part in listed.replace("\n", " ").split(",")]
    assert [f"crucible:evals:{n}" for n in names] == layout.status_indexes(keys.STANDALONE, 0)
