"""Output events: batched by size and time, exact bytes, characters never split."""

import os

import pytest

from sidecar import events
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

MIB = 1024 * 1024


def output_events(found: list[events.Event]) -> list[events.Event]:
    return [e for e in found if e.type == events.EventType.OUTPUT]


async def test_20_mb_written_quickly_arrive_exactly_in_a_bounded_number_of_events(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    batch = 64 * 1024
    # No wrapper cap here (it would stop at 8 MiB), so let the backlog hold it all.
    config = make_settings(redis_url, wrapper.dir, batch_bytes=batch, backlog_max_bytes=32 * MIB)
    sidecar = await start_sidecar(config)
    wrapper.start()
    # Mixed ASCII and multi-byte text in odd-sized writes, so chunk ends fall inside characters.
    line = "ligne numéro {} — ✓ 𝄞 ok\n"
    total = 0
    i = 0
    while total < 20 * MIB:
        data = "".join(line.format(n) for n in range(i, i + 997)).encode()
        wrapper.write("stdout", data)
        total += len(data)
        i += 997
    wrapper.write("stderr", b"warning\n" * 1000)
    wrapper.finish(exit_code=0)

    assert await sidecar.result(within=60) == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert_well_formed(found)
    stdout_events = [e for e in output_events(found) if e.stream == "stdout"]
    # Size-based batching: about total/batch events, never one per write.
    assert len(stdout_events) <= total // (batch - 3) + 2
    assert reassemble(found, "stdout") == wrapper.written["stdout"].decode()
    assert reassemble(found, "stderr") == wrapper.written["stderr"].decode()
    assert all("\ufffd" not in (e.data or "") for e in stdout_events)
    assert found[-1].output == events.tail(wrapper.written["stdout"].decode())


async def test_small_writes_in_quick_succession_are_coalesced(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    # A long interval makes the batching visible without depending on timing: 200 writes
    # issued back to back all land inside the first interval.
    config = make_settings(redis_url, wrapper.dir, batch_interval_seconds=0.5)
    sidecar = await start_sidecar(config)
    wrapper.start()
    for n in range(200):
        wrapper.write("stdout", f"{n}\n".encode())
    found = await wait_for_events(
        redis_url, "ev-1", lambda f: len(reassemble(f, "stdout")) == len(wrapper.written["stdout"])
    )
    assert len(output_events(found)) < 10
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0


async def test_a_character_split_across_writes_is_not_mangled(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir, batch_interval_seconds=0))
    wrapper.start()
    note = "𝄞".encode()  # four bytes
    wrapper.write("stdout", b"a" + note[:2])
    # The sidecar publishes "a" and holds the half character back.
    found = await wait_for_events(redis_url, "ev-1", lambda f: reassemble(f, "stdout") == "a")
    wrapper.write("stdout", note[2:] + b"b")
    found = await wait_for_events(redis_url, "ev-1", lambda f: reassemble(f, "stdout") == "a𝄞b")
    assert [e.data for e in output_events(found)] == ["a", "𝄞b"]
    assert [e.offset for e in output_events(found)] == [0, 1]
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0


async def test_invalid_bytes_become_replacement_marks_at_their_offsets(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start()
    wrapper.write("stdout", b"ok \xff\xfe done")
    wrapper.write("stderr", b"cut \xe2\x82")  # a character the program never finished
    wrapper.finish(exit_code=1)

    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    stdout = [e for e in output_events(found) if e.stream == "stdout"]
    stderr = [e for e in output_events(found) if e.stream == "stderr"]
    assert "".join(e.data or "" for e in stdout) == "ok \ufffd\ufffd done"
    assert "".join(e.data or "" for e in stderr) == "cut \ufffd"
    assert found[-1].error == "cut \ufffd"


async def test_output_before_the_started_record_waits_for_running(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir, batch_interval_seconds=0))
    wrapper.write("stdout", b"early\n")
    # The gate itself is checked deterministically in the outbox unit tests; here, end to end.
    wrapper.start()
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert [e.type for e in found] == ["running", "output", "completed"]


async def test_the_poll_fallback_reports_the_same_events(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir, watch="poll"))
    wrapper.start()
    payload = os.urandom(50_000).hex().encode()
    wrapper.write("stdout", payload)
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert_well_formed(found)
    assert reassemble(found, "stdout") == payload.decode()
