"""Sidecar integration fixtures: a simulated wrapper writing the state-file contract exactly,
the sidecar run in-process or as a real ``python -m sidecar`` process, and event readers."""

import asyncio
import contextlib
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio

from sidecar import events, publisher, service, settings, streams
from wrapper import state

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


class SimulatedWrapper:
    """Writes ``state/`` exactly as ``wrapper.state`` says the wrapper does."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.written: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}

    def start(self, started_at: float = 1_700_000_000.5) -> None:
        state.write_json_atomic(
            str(self.dir), state.STARTED_FILE, state.started_record(4242, ["python"], started_at)
        )

    def write(self, stream: str, data: bytes) -> None:
        with open(self.dir / stream, "ab") as f:
            f.write(data)
        self.written[stream] += data

    def finish(self, exit_code: int = 0, **fields: Any) -> None:
        for stream in ("stdout", "stderr"):
            (self.dir / stream).touch()
        record = state.exit_record(exit_code, **fields)
        state.write_json_atomic(str(self.dir), state.EXIT_FILE, record)


async def read_events(url: str, eval_id: str) -> list[events.Event]:
    async with redis.asyncio.Redis.from_url(url) as client:
        entries = await client.xrange(streams.eval_stream(eval_id))
    return [events.parse(fields[streams.EVENT_FIELD.encode()]) for _, fields in entries]


async def wait_for_events(
    url: str,
    eval_id: str,
    done: Callable[[list[events.Event]], bool],
    within: float = 20.0,
) -> list[events.Event]:
    """The evaluation's events once ``done`` holds for them; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = await read_events(url, eval_id)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            found = []
        if done(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"events not as expected in {within}s: {found[-5:]}")
        await asyncio.sleep(0.02)


async def eventually(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def has_terminal(found: list[events.Event]) -> bool:
    return any(e.terminal for e in found)


def reassemble(found: list[events.Event], stream: str) -> str:
    """The output text of ``stream`` from its events, checking they tile the file exactly.
    Byte lengths are taken from the text, so the output must be valid UTF-8."""
    chunks = sorted((e.offset or 0, e.data or "") for e in found if e.stream == stream)
    text = ""
    expected_offset = 0
    for offset, data in chunks:
        assert offset == expected_offset, f"gap or overlap at {offset}, expected {expected_offset}"
        text += data
        expected_offset += len(data.encode())
    return text


def assert_well_formed(found: list[events.Event]) -> None:
    """Seq 1..n in stream order, no content published twice, at most one terminal, last."""
    assert [e.seq for e in found] == list(range(1, len(found) + 1))
    keys = [(e.type, e.stream, e.offset) for e in found]
    assert len(keys) == len(set(keys)), "an event was published twice"
    terminals = [i for i, e in enumerate(found) if e.terminal]
    assert terminals in ([], [len(found) - 1])


@pytest.fixture
def wrapper(tmp_path: pathlib.Path) -> SimulatedWrapper:
    return SimulatedWrapper(tmp_path / "state")


def make_settings(url: str, state_dir: pathlib.Path, **overrides: Any) -> settings.SidecarSettings:
    values: dict[str, Any] = {
        "eval_id": "ev-1",
        "redis_url": url,
        "state_dir": state_dir,
        "drain_deadline_seconds": 5.0,
        "redis_timeout_seconds": 2.0,
    }
    values.update(overrides)
    return settings.SidecarSettings(**values)


class RunningSidecar:
    def __init__(self, task: "asyncio.Task[int]", stop: asyncio.Event) -> None:
        self.task = task
        self.stop = stop

    async def result(self, within: float = 20.0) -> int:
        async with asyncio.timeout(within):
            return await self.task

    async def terminate(self, within: float = 20.0) -> int:
        self.stop.set()
        return await self.result(within)


StartSidecar = Callable[..., Awaitable[RunningSidecar]]


@pytest.fixture
async def start_sidecar() -> AsyncIterator[StartSidecar]:
    """Runs ``Service`` in this event loop; waits until it watches (``sidecar.ready``)."""
    started: list[RunningSidecar] = []

    async def start(config: settings.SidecarSettings) -> RunningSidecar:
        ready = config.state_dir / state.SIDECAR_READY_FILE
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        stop = asyncio.Event()

        async def run() -> int:
            async with publisher.connect(config) as client:
                sink = streams.Publisher(client, config.limits())
                return await service.Service(config, sink).run(stop)

        sidecar = RunningSidecar(asyncio.create_task(run()), stop)
        started.append(sidecar)
        await eventually(lambda: ready.exists() or sidecar.task.done())
        return sidecar

    yield start
    for sidecar in started:
        if not sidecar.task.done():
            sidecar.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sidecar.task


def sidecar_env(config: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_SIDECAR_")}
    env.update({f"CRUCIBLE_SIDECAR_{k.upper()}": v for k, v in config.items()})
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@pytest.fixture
def sidecar_process() -> Iterator[Callable[[dict[str, str]], subprocess.Popen[bytes]]]:
    """Starts ``python -m sidecar`` with ``CRUCIBLE_SIDECAR_*`` from the given dict."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(config: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar"],
            env=sidecar_env(config),
            stderr=subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def wait_for_file(path: pathlib.Path, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"sidecar exited early: {proc.communicate()[1].decode()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)
