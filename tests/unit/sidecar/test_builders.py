"""The pure event builders: records and bytes in, events (plain dicts) and tokens out.

Each event is read back through the contract's own model (``events.Event``), which checks it.
"""

from typing import Any

import pytest

from sidecar import builders
from wire import channel, event_dicts, events


def read(event: dict[str, Any]) -> events.Event:
    return events.Event.model_validate(event)


def terminal(record: dict[str, Any], output: str = "out", error: str = "err") -> events.Event:
    return read(builders.terminal_event("ev", record, output=output, error=error))


def test_exit_0_is_completed_with_every_field() -> None:
    record = channel.exit_record(0, duration_seconds=1.5, stderr_truncated=True)
    event = terminal(record)
    assert event.type == events.EventType.COMPLETED
    assert (event.exit_code, event.signal, event.duration_seconds) == (0, None, 1.5)
    assert (event.output, event.error, event.truncated, event.verified) == (
        "out",
        "err",
        True,
        False,
    )
    assert event.reason is None
    assert event.source == "sidecar"


@pytest.mark.parametrize(
    ("record", "expected_type", "expected_reason"),
    [
        (channel.exit_record(1), events.EventType.FAILED, None),
        (channel.exit_record(137, signal=9), events.EventType.FAILED, None),
        (
            channel.exit_record(143, signal=15, timed_out=True, duration_seconds=30.004),
            events.EventType.TIMEOUT,
            "timeout after 30s",
        ),
        (
            {
                **channel.exit_record(143, timed_out=True, duration_seconds=31.2),
                "timeout_seconds": 2.5,
            },
            events.EventType.TIMEOUT,
            "timeout after 2.5s",
        ),
        (
            channel.exit_record(127, wrapper_error="command not found: x"),
            events.EventType.ERROR,
            "command not found: x",
        ),
        # A wrapper error wins over a timeout: the command never ran properly.
        (
            channel.exit_record(126, timed_out=True, wrapper_error="permission denied: x"),
            events.EventType.ERROR,
            "permission denied: x",
        ),
    ],
)
def test_the_verdict_follows_the_exit_record(
    record: dict[str, object], expected_type: events.EventType, expected_reason: str | None
) -> None:
    event = terminal(record)
    assert event.type == expected_type
    assert event.reason == expected_reason
    assert event.exit_code == record["exit_code"]
    assert event.terminal


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"exit_code": "x"},
        {"exit_code": 0, "duration_seconds": -1},
        {"exit_code": None},
        # JSON types as they are, no coercion: the wrapper sends exactly these.
        {"exit_code": "0"},
        {"exit_code": True},
        {"exit_code": 0.0},
        {"exit_code": 0, "signal": "9"},
        {"exit_code": 0, "timed_out": 1},
        {"exit_code": 0, "timed_out": None},
        {"exit_code": 0, "duration_seconds": "1.5"},
        {"exit_code": 0, "duration_seconds": float("inf")},
        {"exit_code": 0, "duration_seconds": None},
        {"exit_code": 0, "timeout_seconds": float("nan")},
        {"exit_code": 0, "timeout_seconds": 10**400},
        {"exit_code": 0, "wrapper_error": 5},
        {"exit_code": 0, "stdout_truncated": "no"},
    ],
)
def test_a_malformed_exit_record_is_an_error_not_a_crash(record: dict[str, Any]) -> None:
    event = terminal(record)
    assert event.type == events.EventType.ERROR
    assert event.reason == "unreadable exit record: 1 invalid field(s)"
    assert event.verified is False
    assert (event.output, event.error) == ("out", "err")


def test_every_invalid_field_of_an_exit_record_is_counted() -> None:
    record = {"exit_code": None, "signal": 1.5, "timed_out": "yes", "duration_seconds": -1}
    with pytest.raises(builders.InvalidExitRecordError) as caught:
        builders.parse_exit_record(record)
    assert caught.value.fields == ["exit_code", "signal", "timed_out", "duration_seconds"]
    assert terminal(record).reason == "unreadable exit record: 4 invalid field(s)"


def test_an_exit_record_s_nulls_defaults_and_unknown_keys() -> None:
    record = builders.parse_exit_record(
        {"exit_code": 3, "signal": None, "wrapper_error": None, "finished_at": 1.0, "x": []}
    )
    assert record == builders.ExitRecord(exit_code=3)
    assert builders.parse_exit_record(channel.exit_record(0, duration_seconds=2)) == (
        builders.ExitRecord(exit_code=0, duration_seconds=2.0)
    )
    assert isinstance(
        builders.parse_exit_record({"exit_code": 0, "timeout_seconds": 5}).timeout_seconds, float
    )


def test_the_sidecar_s_own_truncation_counts_whatever_the_record_says() -> None:
    assert terminal(channel.exit_record(0), output="x").truncated is False
    event = builders.terminal_event(
        "ev", channel.exit_record(0), output="", error="", truncated=True
    )
    assert event["truncated"] is True


def test_tails_are_capped() -> None:
    big = "x" * (events.TAIL_LIMIT_CHARS + 10) + "END"
    event = terminal(channel.exit_record(0), output=big)
    assert event.output is not None
    assert len(event.output) == events.TAIL_LIMIT_CHARS
    assert event.output.endswith("END")


def test_running_carries_started_at_and_drops_a_bad_one() -> None:
    good = builders.running_event("ev", channel.started_record(1, ["x"], 1700000000.25))
    assert (good["type"], good["started_at"]) == ("running", 1700000000.25)
    assert read(good).started_at == 1700000000.25
    for bad in ("yesterday", float("nan"), True, 10**400, None):
        event = builders.running_event("ev", {"started_at": bad})
        assert "started_at" not in event
        assert read(event).type == events.EventType.RUNNING


def test_output_event_fields() -> None:
    event = builders.output_event("ev", "stderr", 42, "data")
    assert event == {
        "eval_id": "ev",
        "type": "output",
        "ts": event["ts"],
        "source": "sidecar",
        "stream": "stderr",
        "offset": 42,
        "data": "data",
    }
    assert read(event).data == "data"


def test_output_tokens_name_stream_offset_and_length() -> None:
    assert builders.output_token("stdout", 0, 10) != builders.output_token("stdout", 0, 11)
    assert builders.output_token("stdout", 0, 10) != builders.output_token("stderr", 0, 10)
    assert builders.output_token("stdout", 5, 10) == "output:stdout:5:10"


@pytest.mark.parametrize(
    ("raw", "final", "text", "used"),
    [
        (b"plain", False, "plain", 5),
        ("é".encode()[:1], False, "", 0),  # only half a character: wait for the rest
        (b"ab" + "€".encode()[:2], False, "ab", 2),
        (b"ab" + "€".encode()[:2], True, "ab\ufffd", 4),  # the stream ended mid-character
        (b"a\xffb", False, "a\ufffdb", 3),  # a bad byte is not held back
        ("𝄞".encode(), False, "𝄞", 4),
    ],
)
def test_decode_chunk_holds_back_only_an_incomplete_character(
    raw: bytes, final: bool, text: str, used: int
) -> None:
    assert builders.decode_chunk(raw, final=final) == (text, used)


def test_chunks_cut_anywhere_reassemble_to_the_original_text() -> None:
    original = "añ€𝄞z" * 50
    raw = original.encode()
    for size in range(1, 9):
        offset, text = 0, ""
        while offset < len(raw):
            piece, used = builders.decode_chunk(raw[offset : offset + size], final=False)
            if used == 0:  # the caller gives a stalled chunk more bytes
                piece, used = builders.decode_chunk(raw[offset : offset + 4], final=False)
            text += piece
            offset += used
        assert text == original


def test_a_tail_skips_a_character_cut_at_the_start() -> None:
    raw = "€uro".encode()
    assert event_dicts.tail_of_bytes(raw[1:]) == "uro"
    assert event_dicts.tail_of_bytes(b"") == ""
    assert event_dicts.tail_of_bytes(b"\xffabc") == "\ufffdabc"  # not a continuation byte: kept
