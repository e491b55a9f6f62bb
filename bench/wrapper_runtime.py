"""The wrapper's two runtimes side by side: the bundle (its own interpreter, libraries and
loader, started by crucible-launch) and the zipapp under an image's python.

    python bench/wrapper_runtime.py [--runs 30] [--python /usr/bin/python3]

Builds both here the way the platform image does (``wrapper.pack``; ``wrapper.bundle`` with
wrapper/launch.c compiled by gcc -static), with ``--python`` (default: the Debian python the
image carries). Prints their sizes and, as the median and best of ``--runs`` alternating runs,
the wall time of a whole wrapped ``true``: interpreter start, imports, non-dumpable, connect and
handshake with a stand-in sidecar (bench/wrapper_overhead.py's), spawning ``true`` and exiting;
of ``--help`` (start and imports only); and of the init container's copy into an empty
directory (the pod's ``crucible-bin``), with the same command. Writes
``bench/results/wrapper_runtime.json``.
Nothing is asserted: timings vary by machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrapper_overhead import ChannelServer

from dispatcher.backends.kube.jobs import instrument
from wrapper import pack

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "wrapper_runtime.json"


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def build(work: Path, python: str) -> tuple[Path, Path]:
    app = pack.build(work / pack.FILE_NAME)
    launcher = work / "crucible-launch"
    subprocess.run(
        ["gcc", "-Os", "-static", "-o", str(launcher), str(REPO / "wrapper" / "launch.c")],
        check=True,
    )
    subprocess.run(["strip", str(launcher)], check=True)
    bundle = work / "bundle"
    subprocess.run(
        [python, "-m", "wrapper.bundle", "--launcher", str(launcher), str(bundle)],
        check=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return app, bundle


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--python", default="/usr/bin/python3", help="the image's python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crucible-bench-") as tmp:
        work = Path(tmp)
        app, bundle = build(work, args.python)
        server = ChannelServer(str(work / "channel.sock"))
        runners = {
            "bundled": [str(bundle / "crucible-launch")],
            "image-python": [args.python, "-I", "-S", str(app)],
        }
        copies = {
            "bundled": [instrument._COPY_BUNDLE, str(bundle)],
            "image-python": [instrument._COPY_WRAPPER, str(app)],
        }
        times: dict[str, dict[str, list[float]]] = {
            r: {"true": [], "help": [], "copy": []} for r in runners
        }
        for run in range(args.runs):
            for runtime, runner in runners.items():
                wrapped = [*runner, "--channel", server.path, "--", "true"]
                times[runtime]["true"].append(timed(wrapped))
                times[runtime]["help"].append(timed([*runner, "--help"]))
                target = work / f"bin-{runtime}-{run}"
                target.mkdir()
                if runtime == "image-python":
                    target = target / pack.FILE_NAME
                copy = [args.python, "-I", "-S", "-c", *copies[runtime], str(target)]
                times[runtime]["copy"].append(timed(copy))
        server.close()
        report: dict[str, Any] = {
            "benchmark": "wrapper_runtime",
            "runs": args.runs,
            "python": args.python,
            "sizes": {"bundled": size_of(bundle), "image-python": size_of(app)},
            "seconds": {
                runtime: {
                    what: {"median": statistics.median(s), "best": min(s)}
                    for what, s in samples.items()
                }
                for runtime, samples in times.items()
            },
        }
    print(f"wrapper runtimes, {args.runs} alternating runs each (python: {args.python})")
    print(
        f"{'runtime':<14}{'size':>12}{'wrapped true p50':>20}{'best':>10}{'--help p50':>14}"
        f"{'copy p50':>12}"
    )
    for runtime in runners:
        seconds = report["seconds"][runtime]
        print(
            f"{runtime:<14}{report['sizes'][runtime] / 1e6:>10.2f}MB"
            f"{seconds['true']['median'] * 1000:>18.1f}ms{seconds['true']['best'] * 1000:>8.1f}ms"
            f"{seconds['help']['median'] * 1000:>12.1f}ms"
            f"{seconds['copy']['median'] * 1000:>10.1f}ms"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
