"""Memory of one sidecar while ~100 MB of output streams through an evaluation.

Runs ``python -m sidecar`` as a child process, the real wrapper zipapp (``wrapper.pack``) with
``--channel`` around a program that prints ``--megabytes`` MB (the wrapper and the sidecar keep
the first 8 MiB of each stream, as in a pod), and a minimal ingest endpoint in this process that
takes the sidecar's batches as the dispatcher would (``wire.ingest``; a stand-in, no Redis).
Samples the sidecar's VmRSS every few milliseconds and reports idle, steady (median while
streaming), peak (VmHWM) and after (everything published: its last sample before it leaves,
as a sidecar does once the verdict is out) RSS, the events
published and when the terminal event arrived, relative to the wrapper's exit as seen here
(negative: before it, since the wrapper sends EXIT and then exits); ``elapsed_seconds`` runs
from the wrapper's start to the terminal event. Writes the figures to
``bench/results/sidecar_memory.json``. Target: peak under 30 MB.

    python bench/sidecar_memory.py [--megabytes 100]     (or: make bench)

Where the memory goes (CPython 3.11.7, x86-64; RSS after each import step, each measured in a
fresh interpreter, median of 5; "site" is this checkout's venv, whose editable install loads
pathlib, re, ipaddress and urllib.parse at start-up: 10.6 MB, against 8.2 MB with ``-S``, which
the sidecar then mostly loads itself, so totals differ by < 0.3 MB)::

    before (pydantic events, pydantic-settings)      after (stdlib only, ssl kept out)
    interpreter + site                 10.6 MB       interpreter + site                 10.6 MB
    logging                            +1.1          logging                            +1.1
    ssl (asyncio imports it)           +4.9          asyncio (ssl kept out; with        +3.9
    concurrent.futures, subprocess     +0.6            concurrent.futures, subprocess)
    asyncio (the rest)                 +2.9
    json, codecs, dataclasses, random  +0.4          json, dataclasses, random,         +0.5
    wire.channel, wire.limits          +0.3            pathlib, urllib.parse
    pydantic_core                      +4.1          ctypes (wire.hardening's prctl)    +0.4
    pydantic BaseModel machinery       +6.7          wire.channel, limits, event_dicts, +0.4
    wire.events Event, wire.ingest     +1.6            ingest_route
    pydantic_settings (+ dotenv...)    +1.1          sidecar (all its modules)          +0.6
    SidecarSettings                    +0.5
    sidecar (the rest)                 +0.5
    imports                            35.2 MB       imports                            17.5 MB
    modules loaded                     322           modules loaded                     178

    this benchmark (MB)    idle   steady   peak   after
    before                 35.3   35.4     37.8   -
    after                  17.3   17.4     19.7   18.7

pydantic (core, models, settings) was 14 MB, and it pulled in email, importlib.metadata,
zoneinfo, decimal, hashlib...; the events are now plain dicts (``wire.event_dicts``, tied to
``wire.events.Event`` by tests/unit/wire) and the settings a stdlib reader. ``ssl`` (libssl and
libcrypto) is loaded only for an https ingest URL (``sidecar.__main__.keep_ssl_out``). While
streaming, the rest (~2 MB at peak) is a batch in the making: output read from the spool, its
decoded text, its JSON, the request (``sidecar.drain.BODY_TARGET_BYTES``). What "after" keeps
above idle is glibc's: freed buffers stay in the heap once its dynamic mmap threshold has grown
(``MALLOC_MMAP_THRESHOLD_=65536`` in the sidecar's environment gives after 17.4, peak 19.1).
"""

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

from aiohttp import web

from wire import events, ingest
from wrapper import pack

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sidecar_memory.json"
EVAL_ID = "bench-memory"
TOKEN = "bench-token"
TARGET_MB = 30.0
SAMPLE_SECONDS = 0.005

# The evaluation: about a MiB of mixed text per round to stdout, a line per round to stderr.
PROGRAM = """
import sys
block = ("crucible ✓ " * 25 + "\\n").encode() * 3484
for i in range({mb}):
    sys.stdout.buffer.write(block)
    sys.stderr.write("progress %d\\n" % i)
sys.stdout.flush()
"""


def proc_status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples_kb: list[int] = []
        self.peak_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.samples_kb.append(proc_status_kb(self.pid, "VmRSS"))
                self.peak_kb = proc_status_kb(self.pid, "VmHWM")
            except (OSError, KeyError):
                return  # the process is gone
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Ingest:
    """Takes batches as the dispatcher's ingest route would, and keeps the events."""

    def __init__(self) -> None:
        self.published: list[events.Event] = []
        self.terminal_at: float | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        batch = ingest.Batch.model_validate_json(await request.read())
        for item in batch.events:
            self.published.append(item.event)
            if item.event.terminal:
                self.terminal_at = time.time()
        results = [{"seq": 0, "id": "0-0", "duplicate": False} for _ in batch.events]
        return web.json_response({"results": results})


def published_text(published: list[events.Event], stream: str) -> str:
    chunks = sorted((e.offset or 0, e.data or "") for e in published if e.stream == stream)
    return "".join(data for _, data in chunks)


async def measure(megabytes: int, work: pathlib.Path) -> dict[str, Any]:
    sink = Ingest()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post(ingest.ROUTE, sink.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    socket_path, spool = work / "run" / "channel.sock", work / "spool"
    socket_path.parent.mkdir()
    spool.mkdir()
    app_path = pack.build(work / "bin" / pack.FILE_NAME)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_SIDECAR_")}
    env.update(
        CRUCIBLE_SIDECAR_EVAL_ID=EVAL_ID,
        CRUCIBLE_SIDECAR_SOCKET_PATH=str(socket_path),
        CRUCIBLE_SIDECAR_SPOOL_DIR=str(spool),
        CRUCIBLE_SIDECAR_INGEST_URL=url,
        CRUCIBLE_SIDECAR_INGEST_TOKEN=TOKEN,
        PYTHONPATH=str(REPO),
    )
    sidecar = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", env=env, stderr=asyncio.subprocess.PIPE
    )
    sampler = RssSampler(sidecar.pid)
    sampler.start()
    try:
        while not socket_path.exists():  # noqa: ASYNC110 (a path another process creates)
            await asyncio.sleep(0.005)
        idle_kb = proc_status_kb(sidecar.pid, "VmRSS")
        first_streaming_sample = len(sampler.samples_kb)
        began = time.monotonic()
        wrapper = await asyncio.create_subprocess_exec(
            *(sys.executable, "-I", "-S", str(app_path), "--channel", str(socket_path), "--"),
            *(sys.executable, "-c", PROGRAM.format(mb=megabytes)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        if await wrapper.wait() != 0:
            raise RuntimeError(f"the wrapper exited {wrapper.returncode}")
        wrapper_exit = time.time()
        last_streaming_sample = len(sampler.samples_kb)
        async with asyncio.timeout(120):
            while sink.terminal_at is None and sidecar.returncode is None:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        elapsed = time.monotonic() - began
        # With the verdict out, the sidecar leaves by itself (a pod's does, native or plain).
        _, log = await asyncio.wait_for(sidecar.communicate(), 120)
    finally:
        sampler.stop()
        await runner.cleanup()
    after_kb = sampler.samples_kb[-1]
    if sidecar.returncode != 0:
        raise RuntimeError(f"sidecar exited {sidecar.returncode}: {log.decode()}")
    published = sink.published
    terminal = published[-1]
    streaming = sampler.samples_kb[first_streaming_sample:last_streaming_sample] or [idle_kb]
    captured = sum(len(published_text(published, s).encode()) for s in ("stdout", "stderr"))
    return {
        "megabytes_written_by_program": megabytes,
        "published_output_bytes": captured,
        "events_published": len(published),
        "output_events": sum(e.type == "output" for e in published),
        "terminal_type": terminal.type.value,
        "truncated": terminal.truncated,
        "idle_rss_mb": round(idle_kb / 1024, 1),
        "steady_rss_mb": round(statistics.median(streaming) / 1024, 1),
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "after_rss_mb": round(after_kb / 1024, 1),
        "rss_samples": len(sampler.samples_kb),
        "terminal_after_wrapper_exit_ms": round(((sink.terminal_at or 0) - wrapper_exit) * 1000, 1),
        "elapsed_seconds": round(elapsed, 2),
        "target_peak_mb": TARGET_MB,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    cache = pathlib.Path.home() / ".cache" / "crucible" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    # A short directory: a Unix socket path must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="cs-") as work:
        figures = asyncio.run(measure(args.megabytes, pathlib.Path(work)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:32} {value}")
    verdict = "under" if figures["peak_rss_mb"] < TARGET_MB else "OVER"
    print(f"peak RSS {figures['peak_rss_mb']} MB: {verdict} the {TARGET_MB:g} MB target")


if __name__ == "__main__":
    main()
