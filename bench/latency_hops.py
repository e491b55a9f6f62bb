"""Where the time goes between an evaluation's last act and the legacy pub/sub subscriber, hop by
hop, from the kernel's own timestamps of one run.

    python bench/latency_hops.py [--count 60] [--trace /tmp/latency-trace.txt]

Runs ``bench/latency.py --concurrency 1`` under ``perf trace`` (syscalls and fork/exec
tracepoints of the benchmark and every process it starts: Redis, ``crucible serve``, each
sidecar, wrapper and command), then follows each evaluation through the trace:

  print        the command's ``write`` of the printed time (the start of latency.py's clock)
  exit         the command's ``exit_group`` (the rest of the command's own end: its interpreter
               shutting down; the floor pays it too)
  reaped       the wrapper's ``wait4`` that collects it
  exit_frame   the wrapper's last ``sendmsg``: the EXIT frame on the channel
  sc_read      the sidecar's ``recvfrom`` of it
  sc_post      the sidecar's ``sendto`` of the ingest POST
  d_read       the dispatcher's ``recvfrom`` of that POST (same length)
  d_redis      the dispatcher's ``sendto`` to Redis that Redis reads next (the script call)
  r_read       Redis's ``read`` of it
  r_publish    Redis's ``write`` to the subscriber's connection
  subscriber   the benchmark's ``recvfrom`` of that message

Needs ``perf`` and the right to trace (root, or kernel.perf_event_paranoid <= 1). perf adds a
few microseconds per traced syscall, so the absolute figures run a little above latency.py's;
the split between hops is what this is for. Prints p50/p90/p99 of each hop in milliseconds.
"""

import argparse
import collections
import dataclasses
import itertools
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.support.stats import percentile

BENCH = Path(__file__).resolve().parent / "latency.py"
SYSCALLS = "write,writev,sendmsg,sendto,recvfrom,read,wait4,exit_group"
TRACEPOINTS = "sched:sched_process_fork,sched:sched_process_exec"
HOPS = (
    "print",
    "exit",
    "reaped",
    "exit_frame",
    "sc_read",
    "sc_post",
    "d_read",
    "d_redis",
    "r_read",
    "r_publish",
    "subscriber",
)
# "  1329.429 ( 0.038 ms): python/8465 write(fd: 1, buf: 0x7f69, count: 18)   = 18"
_LINE = re.compile(
    r"^\s*(?P<start>[\d.]+) \(\s*(?P<dur>[\d.]*)(?: ms)?\): (?P<comm>.*?)/(?P<tid>\d+) "
    r"(?P<cont>\.\.\. \[continued\]: )?(?P<name>[\w:]+)\((?P<args>.*?)\)\s*(?:= (?P<ret>.*))?$"
)


@dataclasses.dataclass
class Call:
    at: float  # ms since the trace started: the call's return where known, else its start
    start: float
    tid: int
    name: str
    args: str
    ret: str | None

    def arg(self, key: str) -> str | None:
        found = re.search(rf"\b{key}: (\S+?)[,)]?(?:\s|$)", self.args + " ")
        return found.group(1) if found else None

    def value(self) -> int | None:
        try:
            return int((self.ret or "").split()[0])
        except (ValueError, IndexError):
            return None


def parse(path: Path) -> list[Call]:
    """Completed calls and tracepoints, in time order (a call split by ``[continued]`` is kept
    once, with its return value)."""
    calls: list[Call] = []
    pending: dict[tuple[int, str], Call] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        start, tid, name = float(m["start"]), int(m["tid"]), m["name"]
        dur = float(m["dur"]) if m["dur"] else 0.0
        if m["cont"]:
            call = pending.pop((tid, name), None)
            if call is not None:
                call.at, call.ret = start + dur, m["ret"]
                calls.append(call)
            continue
        call = Call(start + dur, start, tid, name, m["args"], m["ret"])
        if m["ret"] is None and not name.startswith("sched:"):
            pending[(tid, name)] = call
        else:
            calls.append(call)
    calls.sort(key=lambda c: c.at)
    return calls


@dataclasses.dataclass
class Trace:
    """The calls of one run, by thread, and who is who."""

    calls: list[Call]
    parent: dict[int, int]
    execs: dict[int, str]
    by_tid: dict[int, list[Call]]

    @classmethod
    def of(cls, calls: list[Call]) -> "Trace":
        parent: dict[int, int] = {}
        execs: dict[int, str] = {}
        by_tid: dict[int, list[Call]] = collections.defaultdict(list)
        for c in calls:
            by_tid[c.tid].append(c)
            if c.name == "sched:sched_process_fork":
                m = re.search(r"parent_pid: (\d+).*child_pid: (\d+)", c.args)
                if m:
                    parent[int(m[2])] = int(m[1])
            elif c.name == "sched:sched_process_exec":
                m = re.search(r'filename: "([^"]*)", pid: (\d+)', c.args)
                if m:
                    execs[int(m[2])] = m[1]
        return cls(calls, parent, execs, by_tid)

    def children(self, pid: int, *, python: bool) -> list[int]:
        """Processes ``pid`` forked that exec'd this interpreter (``python``), or its threads
        and forks that exec'd nothing."""
        kids = [k for k, p in self.parent.items() if p == pid]
        if python:
            return [k for k in kids if self.execs.get(k) == self.execs[self.root]]
        return [k for k in kids if k not in self.execs]

    @property
    def root(self) -> int:
        return next(iter(self.execs))  # the benchmark: the first exec of the trace

    def first(
        self, tids: set[int], name: str, after: float, test: Callable[[Call], bool], within: float
    ) -> Call | None:
        """The earliest ``name`` call of ``tids`` in (after, after + within) that passes."""
        best = None
        for tid in tids:
            for c in self.by_tid[tid]:
                if c.name == name and after < c.at < after + within and test(c):
                    if best is None or c.at < best.at:
                        best = c
                    break
        return best


def follow(trace: Trace) -> list[dict[str, float]]:
    """One dict of hop times per evaluation whose path could be followed to the end."""
    bench = trace.root
    redis = next(pid for pid, f in trace.execs.items() if f.endswith("-server"))
    roles = {
        "bench": {bench, *trace.children(bench, python=False)} - {redis},
        "redis": {redis, *trace.children(redis, python=False)},
        "dispatcher": {trace.children(bench, python=True)[0]},
    }
    results = []
    for command in (pid for pid, f in trace.execs.items() if "/crucible-local-" in f):
        hops = _evaluation(trace, roles, command)
        if hops is not None:
            results.append(hops)
    return results


def _evaluation(trace: Trace, roles: dict[str, set[int]], command: int) -> dict[str, float] | None:
    wrapper = trace.parent[command]
    (dispatcher,) = roles["dispatcher"]
    # The sidecar is the dispatcher's last interpreter started before the wrapper.
    sidecars = [p for p in trace.children(dispatcher, python=True) if p < wrapper]
    mine = trace.by_tid[command]
    prints = [c for c in mine if c.name == "write" and c.arg("fd") == "1" and (c.value() or 0) > 2]
    exits = [c for c in mine if c.name == "exit_group"]
    frames = [c for c in trace.by_tid[wrapper] if c.name == "sendmsg"]
    if not (sidecars and prints and exits and frames):
        return None
    sidecar, frame = max(sidecars), frames[-1]
    hops = {"print": prints[-1].start, "exit": exits[0].start, "exit_frame": frame.start}
    steps = [
        ("reaped", {wrapper}, "wait4", "exit", lambda c: c.value() == command),
        ("sc_read", {sidecar}, "recvfrom", "exit_frame", lambda c: c.value() == frame.value()),
        ("sc_post", {sidecar}, "sendto", "sc_read", lambda c: True),
    ]
    found: Call | None = None
    for hop, tids, name, after, test in steps:
        found = trace.first(tids, name, hops[after], test, 50)
        if found is None:
            return None
        hops[hop] = found.at if name in ("wait4", "recvfrom") else found.start
    post = found
    assert post is not None
    found = trace.first(
        {dispatcher}, "recvfrom", post.start, lambda c: c.value() == post.value(), 50
    )
    if found is None:
        return None
    hops["d_read"] = found.at
    return _through_redis(trace, roles, hops)


def _through_redis(
    trace: Trace, roles: dict[str, set[int]], hops: dict[str, float]
) -> dict[str, float] | None:
    # The script call: the dispatcher's first send after the POST that Redis reads whole.
    for sent in trace.by_tid[next(iter(roles["dispatcher"]))]:
        if sent.name != "sendto" or not hops["d_read"] < sent.start < hops["d_read"] + 50:
            continue
        read = trace.first(
            roles["redis"], "read", sent.start, lambda c, s=sent: c.value() == s.value(), 50
        )
        if read is not None:
            hops.update(d_redis=sent.start, r_read=read.at)
            break
    else:
        return None
    # Redis writes several clients after the script (a blocked XREAD, the reply, ...): the
    # subscriber's message is the write the benchmark then reads, length for length.
    heard: tuple[float, float] | None = None
    for write in (c for t in roles["redis"] for c in trace.by_tid[t]):
        if write.name not in ("write", "writev") or not 0 < write.start - hops["r_read"] < 20:
            continue
        got = trace.first(
            roles["bench"], "recvfrom", write.start, lambda c, w=write: c.value() == w.value(), 50
        )
        if got is not None and (heard is None or got.at < heard[1]):
            heard = (write.start, got.at)
    if heard is None:
        return None
    hops.update(r_publish=heard[0], subscriber=heard[1])
    return hops


def report(hops: list[dict[str, float]]) -> None:
    print(f"{len(hops)} evaluations followed; milliseconds")
    print(f"  {'hop':28} {'p50':>7} {'p90':>7} {'p99':>7}")
    rows = [(f"{a} -> {b}", [h[b] - h[a] for h in hops]) for a, b in itertools.pairwise(HOPS)]
    rows.append(("print -> subscriber (total)", [h["subscriber"] - h["print"] for h in hops]))
    rows.append(("exit -> subscriber (crucible)", [h["subscriber"] - h["exit"] for h in hops]))
    for name, values in rows:
        print(
            f"  {name:28} {percentile(values, 50):7.2f} {percentile(values, 90):7.2f} "
            f"{percentile(values, 99):7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--trace", type=Path, default=Path("/tmp/latency-trace.txt"))
    parser.add_argument("--reuse", action="store_true", help="analyse --trace, do not run")
    args = parser.parse_args()
    if not args.reuse:
        subprocess.run(
            [
                "perf", "trace", "-o", str(args.trace), "-e", f"{SYSCALLS},{TRACEPOINTS}", "--",
                sys.executable, str(BENCH), "--concurrency", "1", "--count", str(args.count),
                "--floor-count", "20", "--out", str(args.trace.with_suffix(".json")),
            ],
            check=True,
        )  # fmt: skip
    report(follow(Trace.of(parse(args.trace))))


if __name__ == "__main__":
    main()
