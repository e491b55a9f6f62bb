"""Wall time of a program writing 200 MB to stdout, with and without the wrapper.

    python bench/wrapper_overhead.py [--runs 5] [--megabytes 200]

Scenarios: a program writing 64 KiB blocks, its stdout a pipe the benchmark drains (as a
container runtime does for ``kubectl logs``) or /dev/null; a program printing 128-byte lines (a
more typical producer); the wrapper's start-up cost on ``true``. The wrapped runs talk to a
channel server in a process of its own (a stand-in for the sidecar: it ACKs each HELLO and
drains the frames), so they pay for the connect, the handshake and the capped copy onto the
socket. As a reference, the block writer through ``| cat``: what one extra pipe hop costs
without any wrapper. Wrapped and unwrapped runs alternate so that background load hits both
alike. Prints the figures and writes them to ``bench/results/wrapper_overhead.json``. Nothing
is asserted: timings vary by machine.
"""

import argparse
import json
import multiprocessing
import multiprocessing.sharedctypes
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wire import channel
from wrapper import pack

RESULTS = Path(__file__).resolve().parent / "results" / "wrapper_overhead.json"
MIB = 1024 * 1024
# A producer that does nothing but write: Python writing 64 KiB blocks to its stdout.
BLOCK_WRITER = (
    "import sys\n"
    "chunk = b'x' * 65536\n"
    "for _ in range({blocks}):\n"
    "    sys.stdout.buffer.write(chunk)\n"
)
# A more typical one: print() of 128-byte lines.
LINE_PRINTER = "line = 'y' * 127\nfor _ in range({lines}):\n    print(line)\n"


class ChannelServer:
    """Accepts wrapper connections one after another, ACKs each HELLO and drains the frames.

    It serves from a process of its own, as the sidecar does: a thread of this one would take
    the GIL from the loop draining the command's stdout (the runtime's stand-in), and the
    wrapped runs would pay for the benchmark's own contention (wrapped times were bimodal)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stdout_bytes = multiprocessing.Value("q", 0)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        # Forked before the benchmark starts any thread, with the bound socket.
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(self._listener, self._stdout_bytes), daemon=True
        )
        self._process.start()

    @property
    def last_stdout_bytes(self) -> int:
        """The stdout bytes the last connection to end carried."""
        return int(self._stdout_bytes.value)

    def close(self) -> None:
        self._process.terminate()
        self._process.join()
        self._listener.close()


def _serve(
    listener: socket.socket, stdout_bytes: "multiprocessing.sharedctypes.Synchronized[int]"
) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_drain, args=(conn, stdout_bytes), daemon=True).start()


def _drain(conn: socket.socket, last: "multiprocessing.sharedctypes.Synchronized[int]") -> None:
    buffer = bytearray(channel.MAX_FRAME)
    stdout_bytes = 0
    with conn:
        while header := _read(conn, buffer, channel.HEADER.size):
            kind, length = channel.parse_header(bytes(header))
            payload = _read(conn, buffer, length)
            if kind == channel.HELLO:
                conn.sendall(channel.json_frame(channel.ACK, {"v": channel.VERSION}))
            elif kind == channel.STDOUT:
                stdout_bytes += len(payload)
    last.value = stdout_bytes


def _read(conn: socket.socket, buffer: bytearray, size: int) -> memoryview:
    """``size`` bytes into ``buffer`` (empty at end of file)."""
    view = memoryview(buffer)[:size]
    got = 0
    while got < size:
        received = conn.recv_into(view[got:])
        if not received:
            return view[:0]
        got += received
    return view


def run_draining_pipe(argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        received = 0
        while chunk := os.read(fd, MIB):
            received += len(chunk)
        proc.wait()
    return time.perf_counter() - started, received


def run_to_devnull(argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started, 0


def summary(samples: list[float]) -> dict[str, Any]:
    return {"best": min(samples), "median": statistics.median(samples), "all": samples}


def measure(
    runner: Callable[[list[str]], tuple[float, int]],
    command: list[str],
    wrapper_argv: list[str],
    runs: int,
    expected_bytes: int | None,
) -> dict[str, Any]:
    times: dict[str, list[float]] = {"unwrapped": [], "wrapped": []}
    for _ in range(runs):
        for label, argv in (("unwrapped", command), ("wrapped", [*wrapper_argv, *command])):
            elapsed, received = runner(argv)
            if expected_bytes is not None and received != expected_bytes:
                raise SystemExit(f"{label}: got {received} bytes, expected {expected_bytes}")
            times[label].append(elapsed)
    result: dict[str, Any] = {label: summary(samples) for label, samples in times.items()}
    for stat in ("best", "median"):
        result[f"ratio_{stat}"] = result["wrapped"][stat] / result["unwrapped"][stat]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--megabytes", type=int, default=200, help="MiB the program writes")
    parser.add_argument(
        "--wrapper-python", default=sys.executable, help="interpreter that runs the wrapper"
    )
    args = parser.parse_args()

    total = args.megabytes * MIB
    python = [sys.executable, "-I", "-S", "-c"]
    writer = [*python, BLOCK_WRITER.format(blocks=total // 65536)]
    printer = [*python, LINE_PRINTER.format(lines=total // 128)]
    # The least any extra pipe hop costs: the same writer through cat(1).
    through_cat = ["sh", "-c", 'exec "$@" | cat', "sh", *writer]
    with tempfile.TemporaryDirectory(prefix="crucible-bench-") as work:
        app = pack.build(Path(work) / pack.FILE_NAME)
        server = ChannelServer(f"{work}/channel.sock")
        wrapper_argv = [args.wrapper_python, "-I", "-S", str(app), "--channel", server.path, "--"]
        scenarios = {
            "pipe": measure(run_draining_pipe, writer, wrapper_argv, args.runs, total),
        }
        # What the channel carried of the 200 MiB (the cap plus the truncation marker).
        captured = server.last_stdout_bytes
        scenarios["devnull"] = measure(run_to_devnull, writer, wrapper_argv, args.runs, None)
        scenarios["lines_pipe"] = measure(
            run_draining_pipe, printer, wrapper_argv, args.runs, total
        )
        scenarios["startup_true"] = measure(run_to_devnull, ["true"], wrapper_argv, args.runs, None)
        cat = summary([run_draining_pipe(through_cat)[0] for _ in range(args.runs)])
        server.close()

    report = {
        "benchmark": "wrapper_overhead",
        "bytes_written": total,
        "runs": args.runs,
        "captured_bytes": captured,
        "python": platform.python_version(),
        "wrapper_python": subprocess.run(
            [
                args.wrapper_python,
                "-I",
                "-S",
                "-c",
                "import platform; print(platform.python_version())",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "finished_at": time.time(),
        "scenarios": scenarios,
        "reference_pipe_via_cat": cat,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"{args.megabytes} MiB to stdout, {args.runs} runs each, wrapper under Python "
        f"{report['wrapper_python']}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'scenario':<14}{'unwrapped s':>24}{'wrapped s':>24}{'ratio':>16}")
    print(f"{'':<14}{'best / median':>24}{'best / median':>24}{'best / median':>16}")
    for name, result in scenarios.items():
        plain, wrapped = result["unwrapped"], result["wrapped"]
        print(
            f"{name:<14}"
            f"{plain['best']:>12.3f} / {plain['median']:<9.3f}"
            f"{wrapped['best']:>12.3f} / {wrapped['median']:<9.3f}"
            f"{result['ratio_best']:>7.2f} / {result['ratio_median']:<6.2f}"
        )
    plain = scenarios["pipe"]["unwrapped"]
    print(
        f"reference: the block writer through '| cat' (one extra pipe hop, no wrapper): "
        f"{cat['best']:.3f} / {cat['median']:.3f} s, "
        f"ratio {cat['best'] / plain['best']:.2f} / {cat['median'] / plain['median']:.2f}"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
