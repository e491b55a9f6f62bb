"""A restarted sidecar (a native sidecar the kubelet restarts) republishes nothing twice."""

import asyncio
import json
import signal
import subprocess
from collections.abc import Callable

import pytest

from sidecar import events, progress
from tests.integration.sidecar.conftest import (
    SimulatedWrapper,
    StartSidecar,
    assert_well_formed,
    has_terminal,
    make_settings,
    reassemble,
    wait_for_events,
    wait_for_file,
)

pytestmark = pytest.mark.integration

Spawn = Callable[[dict[str, str]], subprocess.Popen[bytes]]


async def test_a_sidecar_restarted_after_the_end_adds_no_events(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    first = await start_sidecar(make_settings(redis_url, wrapper.dir, batch_bytes=100))
    wrapper.start()
    wrapper.write("stdout", b"".join(b"line %d\n" % n for n in range(100)))
    wrapper.finish(exit_code=0)
    assert await first.result() == 0
    before = await wait_for_events(redis_url, "ev-1", has_terminal)

    # Different batching after the restart: the replayed chunk keeps its recorded boundaries.
    again = await start_sidecar(make_settings(redis_url, wrapper.dir, batch_bytes=4096))
    assert await again.result() == 0
    after = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert after == before
    saved = progress.load(str(wrapper.dir))
    assert saved is not None
    assert saved.inflight is not None
    assert saved.inflight.end == len(wrapper.written["stdout"])


async def test_a_sidecar_killed_mid_stream_resumes_exactly_where_it_was(
    redis_url: str, wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    base = {"eval_id": "ev-r", "redis_url": redis_url, "state_dir": str(wrapper.dir)}
    first = sidecar_process({**base, "batch_bytes": "1000", "batch_interval_seconds": "0"})
    wait_for_file(wrapper.dir / "sidecar.ready", first)
    wrapper.start()
    for n in range(2000):
        wrapper.write("stdout", f"{n:05d} ".encode() * 10 + b"\n")
        if n == 1000:
            await wait_for_events(redis_url, "ev-r", lambda f: len(f) > 20)
            first.send_signal(signal.SIGKILL)  # a crash: no drain, no clean-up
            first.wait()
    second = sidecar_process({**base, "batch_bytes": "7000"})
    wrapper.finish(exit_code=0)
    _, log = await asyncio.to_thread(second.communicate, timeout=30)
    assert second.returncode == 0, log.decode()

    found = await wait_for_events(redis_url, "ev-r", has_terminal)
    assert_well_formed(found)
    assert reassemble(found, "stdout") == wrapper.written["stdout"].decode()
    assert [e.type for e in found].count(events.EventType.RUNNING) == 1


async def test_a_chunk_in_flight_at_a_crash_is_replayed_with_its_boundaries(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    # The state a crash leaves between recording a chunk and publishing it.
    wrapper.start()
    wrapper.write("stdout", b"hello world")
    chunk = progress.Chunk("stdout", 0, 5)
    progress.save(str(wrapper.dir), progress.Progress({"stdout": 0, "stderr": 0}, chunk))

    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir, batch_bytes=4096))
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert [(e.offset, e.data) for e in found if e.type == "output"] == [
        (0, "hello"),
        (5, " world"),
    ]


async def test_an_unreadable_progress_record_means_starting_over_not_crashing(
    redis_url: str, wrapper: SimulatedWrapper, start_sidecar: StartSidecar
) -> None:
    (wrapper.dir / progress.PROGRESS_FILE).write_text(json.dumps({"published": "garbage"}))
    sidecar = await start_sidecar(make_settings(redis_url, wrapper.dir))
    wrapper.start()
    wrapper.write("stdout", b"fresh\n")
    wrapper.finish(exit_code=0)
    assert await sidecar.result() == 0
    found = await wait_for_events(redis_url, "ev-1", has_terminal)
    assert reassemble(found, "stdout") == "fresh\n"
