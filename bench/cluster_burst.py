"""A burst on a real cluster: many evaluations at once, admitted a few at a time.

    python bench/cluster_burst.py [--count 200] [--max-running 20] [--submitters 16]

Needs KUBECONFIG (tests/cluster/up.sh) and the locally built images (tests/cluster/images.sh).
Installs the chart (tests/e2e/values.yaml, `evaluation.admission.maxRunning` set) into a fresh
namespace, submits --count evaluations as fast as --submitters threads can, each printing its
index and exiting with index % 3 (50m CPU each, so that --max-running fit the node), and waits
until every one has its verified verdict. Prints:
  * whether every verdict is right (status, exit code, output) and verified;
  * the most evaluations admitted at once and the deepest queue (sampled in Redis every 0.1 s),
    against --max-running;
  * wall time, and submit -> verified verdict p50/p99;
  * the dispatchers' peak RSS (VmHWM of each pod's PID 1);
  * the API server's requests during the burst per evaluation, by resource and verb
    (apiserver_request_total, every client: the dispatcher's own are the jobs create/delete
    and the watches; the job controller and kubelet make the rest).
Writes bench/results/cluster_burst.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.support.stats import percentile  # noqa: E402
from tests.e2e import kube  # noqa: E402
from tests.e2e.api import TERMINAL, Dispatcher  # noqa: E402
from tests.e2e.conftest import Release, installed  # noqa: E402
from wire import keys  # noqa: E402

_REQUESTS = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_WATCHED = ("jobs", "pods", "leases", "events")
# Small enough that --max-running of them fit this 2-CPU node at once: the benchmark is about
# admission, and a pod that waits for CPU longer than the pending grace ends as an error.
RESOURCES = {"cpu": "50m", "memory": "64Mi"}


def requests_by_verb() -> collections.Counter[tuple[str, str]]:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in kube.kubectl("get", "--raw", "/metrics", timeout=60).splitlines():
        match = _REQUESTS.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("resource") in _WATCHED:
            counts[(labels["resource"], labels["verb"])] += int(float(match.group(2)))
    return counts


def peak_rss_mib(namespace: str) -> dict[str, float]:
    pods = kube.kubectl_json(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=dispatcher"
    )["items"]
    peaks = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        status = kube.kubectl("exec", "-n", namespace, name, "--", "cat", "/proc/1/status")
        kib = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        peaks[name] = round(kib / 1024, 1)
    return peaks


class Watcher:
    """Follows the global event stream in Redis: when each evaluation's verified verdict was
    recorded, and between reads the most admitted and queued evaluations seen."""

    def __init__(self, release: Release) -> None:
        self.redis = release.redis
        self.admitted = 0
        self.queued = 0
        self.verified: dict[str, float] = {}
        self.stop = threading.Event()
        info: dict[str, Any] = self.redis.xinfo_stream(keys.STANDALONE.global_stream(0))  # type: ignore[assignment]
        self.start = info["last-generated-id"]
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        last = self.start
        while not self.stop.is_set():
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(keys.ADMITTED)
            pipe.zcard(keys.QUEUE_ORDER)
            admitted, queued = pipe.execute()
            self.admitted = max(self.admitted, int(admitted))
            self.queued = max(self.queued, int(queued))
            reply: list[Any] = self.redis.xread({keys.STANDALONE.global_stream(0): last}, block=100)  # type: ignore[assignment]
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    last = entry_id
                    event = json.loads(fields[keys.EVENT_FIELD])
                    if event.get("verified") and event["type"] in TERMINAL:
                        self.verified.setdefault(event["eval_id"], time.time())

    def wait(self, eval_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not all(e in self.verified for e in eval_ids):
            if time.monotonic() > deadline:
                missing = [e for e in eval_ids if e not in self.verified]
                raise TimeoutError(f"{len(missing)} without a verified verdict: {missing[:5]}")
            time.sleep(0.5)


def burst(
    api: Dispatcher, watcher: Watcher, count: int, submitters: int
) -> tuple[list[dict[str, Any]], float]:
    def submit(index: int) -> tuple[str, float]:
        started = time.time()
        record = api.submit_ok(
            code=f"import sys; print('burst {index}'); sys.exit({index % 3})",
            resources=RESOURCES,
        )
        return record["eval_id"], started

    started = time.time()
    with ThreadPoolExecutor(submitters) as pool:
        submitted = list(pool.map(submit, range(count)))
    eval_ids = [eval_id for eval_id, _ in submitted]
    watcher.wait(eval_ids, timeout=1800)
    wall = max(watcher.verified.values()) - started
    with ThreadPoolExecutor(submitters) as pool:
        final = list(pool.map(api.get, eval_ids))
    results = [
        {"index": i, "record": record, "seconds": watcher.verified[eval_id] - at}
        for i, ((eval_id, at), record) in enumerate(zip(submitted, final, strict=True))
    ]
    return results, wall


def wrong(result: dict[str, Any]) -> str | None:
    index, record = result["index"], result["record"]
    want = ("completed", 0) if index % 3 == 0 else ("failed", index % 3)
    got = (record["status"], record["exit_code"])
    if got != want or not record["verified"] or f"burst {index}" not in (record["output"] or ""):
        return f"{index}: want {want}, got {got} ({record['reason']}), {record['verified']=}"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
        values.write(
            f"evaluation:\n  admission:\n    maxRunning: {args.max_running}\n"
            f"    maxQueued: {args.count * 2}\n"
            # The chart's default: the e2e values' 20 s would call a pod that waits for a
            # busy node's CPU an error.
            "  pendingGraceSeconds: 120\n"
        )
        values.flush()
        with installed(kube.REPO / "tests/e2e/values.yaml", Path(values.name)) as release:
            release.api.submit_ok(code="print('warm-up')")  # the first pod of the image
            before = requests_by_verb()
            watcher = Watcher(release)
            results, wall = burst(release.api, watcher, args.count, args.submitters)
            watcher.stop.set()
            after = requests_by_verb()
            rss = peak_rss_mib(release.namespace)
    problems = [p for p in map(wrong, results) if p]
    seconds = [r["seconds"] for r in results]
    per_evaluation = {
        f"{resource} {verb}": round((after[key] - before[key]) / args.count, 2)
        for key in sorted(after)
        for resource, verb in [key]
        if after[key] - before[key] > 0
    }
    return {
        "benchmark": "cluster_burst",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        "count": args.count,
        "max_running": args.max_running,
        "all_right_and_verified": not problems,
        "wrong": len(problems),
        "problems": problems[:10],
        "most_admitted_seen": watcher.admitted,
        "deepest_queue_seen": watcher.queued,
        "wall_seconds": round(wall, 1),
        "evaluations_per_minute": round(args.count / wall * 60, 1),
        "submit_to_verified_seconds": {
            "p50": round(percentile(seconds, 50), 2),
            "p99": round(percentile(seconds, 99), 2),
        },
        "dispatcher_peak_rss_mib": rss,
        "apiserver_requests_per_evaluation": per_evaluation,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--max-running", type=int, default=20)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cluster_burst.json")
    args = parser.parse_args()
    problem = kube.cluster_problem()
    if problem:
        print(f"cluster_burst: skipped, {problem}")
        return 0
    result = run(args)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if result["all_right_and_verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
