"""Memory of one sidecar while ~100 MB of output streams through an evaluation.

Runs the embedded Redis-compatible server, ``python -m sidecar`` as a child process and the real
wrapper zipapp (``wrapper.pack``) around a program that prints ``--megabytes`` MB; the wrapper
keeps the first 8 MiB of each stream in the state files, as in a pod. Samples the sidecar's
VmRSS every few milliseconds and reports idle, steady (median while streaming) and peak (VmHWM)
RSS, the events published and how soon after the wrapper's exit the terminal event was in
Redis. Writes the figures to ``bench/results/sidecar_memory.json``. Target: peak under 60 MB.

    python bench/sidecar_memory.py [--megabytes 100]     (or: make bench)
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import redis

from dispatcher import embedded_redis
from sidecar import events, streams
from wrapper import pack, state

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "sidecar_memory.json"
EVAL_ID = "bench-memory"
TARGET_MB = 60.0
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


def published_text(published: list[events.Event], stream: str) -> str:
    chunks = sorted((e.offset or 0, e.data or "") for e in published if e.stream == stream)
    return "".join(data for _, data in chunks)


def wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.005)


def start_sidecar(url: str, state_dir: pathlib.Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_SIDECAR_")}
    env.update(
        CRUCIBLE_SIDECAR_EVAL_ID=EVAL_ID,
        CRUCIBLE_SIDECAR_REDIS_URL=url,
        CRUCIBLE_SIDECAR_STATE_DIR=str(state_dir),
        PYTHONPATH=str(REPO),
    )
    return subprocess.Popen([sys.executable, "-m", "sidecar"], env=env, stderr=subprocess.PIPE)


def measure(megabytes: int, work: pathlib.Path) -> dict[str, Any]:
    server = embedded_redis.EmbeddedRedis(work / "redis").start()
    try:
        state_dir = work / "state"
        state_dir.mkdir()
        app = pack.build(work / "bin" / pack.FILE_NAME)
        sidecar = start_sidecar(server.url, state_dir)
        sampler = RssSampler(sidecar.pid)
        sampler.start()
        wait_for(lambda: (state_dir / state.SIDECAR_READY_FILE).exists(), "sidecar ready")
        idle_kb = proc_status_kb(sidecar.pid, "VmRSS")
        first_streaming_sample = len(sampler.samples_kb)
        began = time.monotonic()
        command = [sys.executable, "-I", "-S", str(app), "--state-dir", str(state_dir), "--"]
        command += [sys.executable, "-c", PROGRAM.format(mb=megabytes)]
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        last_streaming_sample = len(sampler.samples_kb)
        _, log = sidecar.communicate(timeout=120)
        elapsed = time.monotonic() - began
        sampler.stop()
        if sidecar.returncode != 0:
            raise RuntimeError(f"sidecar exited {sidecar.returncode}: {log.decode()}")
        with redis.Redis.from_url(server.url) as client:
            entries: list[tuple[bytes, dict[bytes, bytes]]]
            entries = client.xrange(streams.eval_stream(EVAL_ID))
    finally:
        server.stop()
    published = [events.parse(fields[b"event"]) for _, fields in entries]
    exit_record = state.read_json(str(state_dir), state.EXIT_FILE) or {}
    terminal = published[-1]
    streaming = sampler.samples_kb[first_streaming_sample:last_streaming_sample] or [idle_kb]
    exact = all(
        published_text(published, s) == (state_dir / s).read_bytes().decode("utf-8", "replace")
        for s in state.OUTPUT_FILES
    )
    return {
        "megabytes_written_by_program": megabytes,
        "state_file_bytes": sum((state_dir / s).stat().st_size for s in state.OUTPUT_FILES),
        "published_output_matches_files": exact,
        "events_published": len(published),
        "output_events": sum(e.type == "output" for e in published),
        "terminal_type": terminal.type.value,
        "terminal_reason": terminal.reason,
        "truncated": terminal.truncated,
        "idle_rss_mb": round(idle_kb / 1024, 1),
        "steady_rss_mb": round(statistics.median(streaming) / 1024, 1),
        "peak_rss_mb": round(sampler.peak_kb / 1024, 1),
        "rss_samples": len(sampler.samples_kb),
        "terminal_after_exit_ms": round((terminal.ts - exit_record["finished_at"]) * 1000, 1),
        "elapsed_seconds": round(elapsed, 2),
        "target_peak_mb": TARGET_MB,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    cache = pathlib.Path.home() / ".cache" / "crucible" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        figures = measure(args.megabytes, pathlib.Path(work))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:32} {value}")
    verdict = "under" if figures["peak_rss_mb"] < TARGET_MB else "OVER"
    print(f"peak RSS {figures['peak_rss_mb']} MB: {verdict} the {TARGET_MB:g} MB target")


if __name__ == "__main__":
    main()
