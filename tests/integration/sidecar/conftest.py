"""Sidecar integration fixtures: the recording ingest stand-in, short socket paths, and the
sidecar run in-process (``Service``) or as a real ``python -m sidecar`` process."""

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from sidecar import publisher, service, settings, transport
from tests.integration.sidecar.recording_ingest import RecordingIngest
from wire import events

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
EVAL_ID = "ev-1"


@dataclasses.dataclass(frozen=True)
class Paths:
    socket: pathlib.Path
    spool: pathlib.Path


@pytest.fixture
def paths() -> Iterator[Paths]:
    """A short directory: a Unix socket path must stay under 108 bytes."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="cs-"))
    (root / "run").mkdir()
    (root / "spool").mkdir(mode=0o700)
    yield Paths(socket=root / "run" / "channel.sock", spool=root / "spool")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def ingest() -> AsyncIterator[RecordingIngest]:
    server = await RecordingIngest(EVAL_ID).start()
    yield server
    await server.stop()


def make_settings(
    ingest: RecordingIngest, paths: Paths, **overrides: Any
) -> settings.SidecarSettings:
    values: dict[str, Any] = {
        "eval_id": ingest.eval_id,
        "socket_path": paths.socket,
        "spool_dir": paths.spool,
        "ingest_url": ingest.url,
        "ingest_token": ingest.token,
        "ingest_timeout_seconds": 5.0,
        "drain_deadline_seconds": 5.0,
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
    """Runs ``Service`` in this event loop with the real HTTP client; waits for the socket
    unless ``listening=False`` (a restarted sidecar never listens)."""
    started: list[RunningSidecar] = []

    async def start(config: settings.SidecarSettings, *, listening: bool = True) -> RunningSidecar:
        stop = asyncio.Event()

        async def run() -> int:
            client = transport.HttpClient(
                str(config.ingest_url), timeout=config.ingest_timeout_seconds
            )
            try:
                sink = publisher.IngestPublisher(
                    client, eval_id=config.eval_id, token=config.ingest_token.get_secret_value()
                )
                return await service.Service(config, sink).run(stop)
            finally:
                await client.aclose()

        sidecar = RunningSidecar(asyncio.create_task(run()), stop)
        started.append(sidecar)
        if listening:
            await eventually(lambda: config.socket_path.exists() or sidecar.task.done())
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


Spawn = Callable[[dict[str, str]], Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def sidecar_process() -> AsyncIterator[Spawn]:
    """Starts ``python -m sidecar`` with ``CRUCIBLE_SIDECAR_*`` from the given dict."""
    procs: list[asyncio.subprocess.Process] = []

    async def spawn(config: dict[str, str]) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sidecar",
            env=sidecar_env(config),
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.communicate()


def process_env(ingest: RecordingIngest, paths: Paths, **extra: str) -> dict[str, str]:
    return {
        "eval_id": ingest.eval_id,
        "socket_path": str(paths.socket),
        "spool_dir": str(paths.spool),
        "ingest_url": ingest.url,
        "ingest_token": ingest.token,
        **extra,
    }


async def finished(proc: asyncio.subprocess.Process, within: float = 20) -> tuple[int, str]:
    async with asyncio.timeout(within):
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def eventually(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Return once ``condition()`` holds; fail after ``within`` seconds. For what has nothing
    to await: a path another process creates."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def has_terminal(found: list[events.Event]) -> bool:
    return any(e.terminal for e in found)


def reassemble(found: list[events.Event], stream: str) -> str:
    """The output text of ``stream`` from its events, checking they tile it exactly. Byte
    lengths are taken from the text, so the output must be valid UTF-8."""
    text, expected_offset = "", 0
    for event in (e for e in found if e.type == "output" and e.stream == stream):
        assert event.offset == expected_offset, f"gap, overlap or disorder at {event.offset}"
        text += event.data or ""
        expected_offset += len((event.data or "").encode())
    return text


def assert_well_formed(ingest: RecordingIngest) -> None:
    """Each token stored once, in publishing order, at most one terminal event and it last."""
    tokens = [s.token for s in ingest.stored]
    assert len(tokens) == len(set(tokens))
    found = ingest.published
    terminals = [i for i, e in enumerate(found) if e.terminal]
    assert terminals in ([], [len(found) - 1])
    assert all(e.source == "sidecar" and e.eval_id == ingest.eval_id for e in found)
