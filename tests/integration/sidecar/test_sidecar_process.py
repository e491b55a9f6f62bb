"""``python -m sidecar`` as a real process: ready file, exit after the end, SIGTERM drain."""

import asyncio
import signal
import subprocess
from collections.abc import Callable

import pytest

from tests.integration.sidecar.conftest import (
    SimulatedWrapper,
    assert_well_formed,
    has_terminal,
    reassemble,
    wait_for_events,
    wait_for_file,
)

pytestmark = pytest.mark.integration

Spawn = Callable[[dict[str, str]], subprocess.Popen[bytes]]


def env_for(redis_url: str, wrapper: SimulatedWrapper, **extra: str) -> dict[str, str]:
    return {"eval_id": "ev-p", "redis_url": redis_url, "state_dir": str(wrapper.dir), **extra}


async def finished(proc: subprocess.Popen[bytes], within: float = 20) -> tuple[int, str]:
    _, err = await asyncio.wait_for(asyncio.to_thread(proc.communicate), within)
    return proc.returncode, err.decode()


async def test_the_process_exits_0_after_publishing_the_end(
    redis_url: str, wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    proc = sidecar_process(env_for(redis_url, wrapper))
    wait_for_file(wrapper.dir / "sidecar.ready", proc)
    wrapper.start()
    wrapper.write("stdout", b"out\n")
    wrapper.finish(exit_code=0)

    code, log = await finished(proc)
    assert code == 0, log
    found = await wait_for_events(redis_url, "ev-p", has_terminal)
    assert [e.type for e in found] == ["running", "output", "completed"]
    assert "published 3 events" in log


async def test_sigterm_flushes_output_and_publishes_no_end_without_exit_record(
    redis_url: str, wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    # A long batch interval: the output is still waiting when SIGTERM comes, so the drain
    # is what publishes it.
    proc = sidecar_process(env_for(redis_url, wrapper, batch_interval_seconds="30"))
    wait_for_file(wrapper.dir / "sidecar.ready", proc)
    wrapper.start()
    await wait_for_events(redis_url, "ev-p", lambda f: len(f) == 1)
    wrapper.write("stdout", b"partial output, then the container was OOM-killed\n")
    proc.send_signal(signal.SIGTERM)

    code, log = await finished(proc)
    assert code == 0, log
    found = await wait_for_events(redis_url, "ev-p", lambda f: len(f) >= 2)
    assert_well_formed(found)
    assert not has_terminal(found)
    assert reassemble(found, "stdout") == wrapper.written["stdout"].decode()
    assert "end was not seen" in log


async def test_sigterm_publishes_an_exit_record_that_just_landed(
    redis_url: str, wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    # A native sidecar (stays up) told to stop right as the wrapper finishes.
    proc = sidecar_process(
        env_for(
            redis_url,
            wrapper,
            exit_after_terminal="false",
            watch="poll",
            poll_interval_seconds="60",
        )
    )
    wait_for_file(wrapper.dir / "sidecar.ready", proc)
    wrapper.start()
    wrapper.write("stderr", b"bye\n")
    wrapper.finish(exit_code=5)
    proc.send_signal(signal.SIGTERM)

    code, log = await finished(proc)
    assert code == 0, log
    found = await wait_for_events(redis_url, "ev-p", has_terminal)
    assert [e.type for e in found] == ["running", "output", "failed"]
    assert found[-1].exit_code == 5


async def test_a_native_sidecar_stays_up_after_the_end_until_sigterm(
    redis_url: str, wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    proc = sidecar_process(env_for(redis_url, wrapper, exit_after_terminal="false"))
    wait_for_file(wrapper.dir / "sidecar.ready", proc)
    wrapper.start()
    wrapper.finish(exit_code=0)
    await wait_for_events(redis_url, "ev-p", has_terminal)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    code, log = await finished(proc)
    assert code == 0, log


async def test_sigterm_while_redis_is_away_gives_up_at_the_drain_deadline(
    wrapper: SimulatedWrapper, sidecar_process: Spawn
) -> None:
    from tests import redisproc

    nobody = f"redis://127.0.0.1:{redisproc.free_port()}/0"
    proc = sidecar_process(env_for(nobody, wrapper, drain_deadline_seconds="0.5"))
    wait_for_file(wrapper.dir / "sidecar.ready", proc)
    wrapper.start()
    wrapper.write("stdout", b"never delivered\n")
    wrapper.finish(exit_code=0)
    proc.send_signal(signal.SIGTERM)

    code, log = await finished(proc)
    assert code == 1, log
    assert "drain deadline passed: 16 output bytes and an event not published" in log


def test_missing_eval_id_fails_at_start(wrapper: SimulatedWrapper, sidecar_process: Spawn) -> None:
    proc = sidecar_process({"state_dir": str(wrapper.dir)})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert b"eval_id" in err
    assert not (wrapper.dir / "sidecar.ready").exists()
