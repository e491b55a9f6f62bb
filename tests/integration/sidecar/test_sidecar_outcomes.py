"""Each way an evaluation can end, as the sidecar reports it to a real Redis."""

import asyncio
import json
import pathlib
from typing import Any

import pytest
import redis.asyncio

from sidecar import events, streams
from tests.integration.sidecar.conftest import (
    SimulatedWrapper,
    StartSidecar,
    assert_well_formed,
    has_terminal,
    make_settings,
    reassemble,
    wait_for_events,
)

pytestmark = pytest.mark.integration

OUTCOMES = [
    pytest.param({"exit_code": 0}, events.EventType.COMPLETED, None, id="completed"),
    pytest.param({"exit_code": 3}, events.EventType.FAILED, None, id="failed"),
    pytest.param(
        {"exit_code": 137, "signal": 9}, events.EventType.FAILED, None, id="failed-by-signal"
    ),
    pytest.param(
        {"exit_code": 143, "signal": 15, "timed_out": True, "duration_seconds": 2.0},
        events.EventType.TIMEOUT,
        "timeout after 2s",
        id="timeout",
    ),
    pytest.param(
        {"exit_code": 127, "wrapper_error": "command not found: nosuchcmd"},
        events.EventType.ERROR,
        "command not found: nosuchcmd",
        id="error",
    ),
]


@pytest.mark.parametrize(("exit_fields", "expected_type", "expected_reason"), OUTCOMES)
async def test_running_output_and_one_terminal_event_for_each_outcome(
    redis_url: str,
    wrapper: SimulatedWrapper,
    start_sidecar: StartSidecar,
    exit_fields: dict[str, Any],
    expected_type: events.EventType,
    expected_reason: str | None,
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start(started_at=1_700_000_000.5)
    wrapper.write("stdout", b"hello\n")
    wrapper.write("stderr", b"oops\n")
    wrapper.finish(duration_seconds=exit_fields.pop("duration_seconds", 1.25), **exit_fields)

    assert await sidecar.result() == 0  # exit_after_terminal is the default
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert_well_formed(found)
    assert found[0].type == events.EventType.RUNNING
    assert found[0].started_at == 1_700_000_000.5
    assert reassemble(found, "stdout") == "hello\n"
    assert reassemble(found, "stderr") == "oops\n"
    terminal = found[-1]
    assert terminal.type == expected_type
    assert terminal.reason == expected_reason
    assert terminal.exit_code == exit_fields["exit_code"]
    assert terminal.signal == exit_fields.get("signal")
    assert (terminal.output, terminal.error) == ("hello\n", "oops\n")
    assert terminal.verified is False
    assert terminal.source == "sidecar"
    assert all(e.eval_id == "ev-1" for e in found)


async def test_command_that_never_started_gets_error_without_running(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.write("stderr", b"crucible-wrapper: cannot execute\n")
    wrapper.finish(exit_code=126, wrapper_error="permission denied: ./run.sh")

    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert [e.type for e in found] == [events.EventType.OUTPUT, events.EventType.ERROR]
    assert found[-1].exit_code == 126
    assert found[-1].reason == "permission denied: ./run.sh"


async def test_truncated_output_is_flagged_in_the_terminal_event(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start()
    wrapper.write("stdout", b"x" * 100 + b"\n[crucible: output truncated at the cap]\n")
    wrapper.finish(exit_code=0, stdout_truncated=True)

    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert found[-1].truncated is True
    assert found[-1].output is not None
    assert found[-1].output.endswith("truncated at the cap]\n")


async def test_a_malformed_exit_record_ends_as_error(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start()
    (wrapper.dir / "exit.json").write_text('{"exit_code": "not a number"}')

    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert found[-1].type == events.EventType.ERROR
    assert found[-1].reason is not None
    assert "unreadable exit record" in found[-1].reason


async def test_legacy_completed_channel_hears_one_message(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    async with redis.asyncio.Redis.from_url(redis_url) as client, client.pubsub() as pubsub:
        await pubsub.subscribe("evaluation:completed", "evaluation:failed", "evaluation:running")
        sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
        wrapper.start()
        wrapper.write("stdout", b"42\n")
        wrapper.finish(exit_code=0, duration_seconds=0.5)
        assert await sidecar.result() == 0
        # A second sidecar on the same state (a restart) must not announce the end again.
        again = await start_sidecar(make_settings(redis_url, wrapper.dir))
        assert await again.result() == 0
        messages: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(messages) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    messages.append(message)
        assert await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.3) is None

    assert [m["channel"] for m in messages] == [b"evaluation:running", b"evaluation:completed"]
    payload = json.loads(messages[1]["data"])
    assert payload["eval_id"] == "ev-1"
    assert payload["exit_code"] == 0
    assert payload["output"] == "42\n"
    assert payload["duration_seconds"] == 0.5


async def test_events_reach_the_global_stream_too(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start()
    wrapper.finish(exit_code=1)
    assert await sidecar.result() == 0

    async with redis.asyncio.Redis.from_url(redis_url) as client:
        entries = await client.xrange(streams.GLOBAL_STREAM)
        ttl = await client.ttl(streams.eval_stream("ev-1"))
    kinds = [events.parse(fields[b"event"]).type for _, fields in entries]
    assert kinds == [events.EventType.RUNNING, events.EventType.FAILED]
    assert ttl > 0


async def test_ready_file_is_written_once_watching(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir, exit_after_terminal=False))
    ready = json.loads((wrapper.dir / "sidecar.ready").read_text())
    assert ready["watcher"] == "inotify"
    assert not sidecar.task.done()
    assert await sidecar.terminate() == 0


def test_state_dir_path_is_the_one_the_wrapper_writes(wrapper: SimulatedWrapper) -> None:
    # Guards the simulation itself: file names come from the contract, not from this test.
    wrapper.start()
    wrapper.finish(exit_code=0)
    assert sorted(p.name for p in pathlib.Path(wrapper.dir).iterdir()) == [
        "exit.json",
        "started.json",
        "stderr",
        "stdout",
    ]
