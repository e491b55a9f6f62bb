"""Latency of evaluations on a real cluster, and what the instrumentation costs.

    python bench/cluster_latency.py [--count 50] [--concurrency 4] [--namespace NS]

Needs KUBECONFIG (tests/cluster/up.sh) and the locally built images (tests/cluster/images.sh).
Installs the chart with tests/e2e/values.yaml into a fresh namespace (or uses the release
already in --namespace), then measures, all on this machine's clock:
  * submit -> `running` event at the client (SSE), the wrapper's exit -> the terminal event at
    the client (split at the event's ``ts``, stamped by the sidecar when it built the event:
    exit -> sidecar, then sidecar -> dispatcher -> Redis -> client), the same exit -> the
    event at a plain pub/sub subscriber of the release's Redis (the local row's vantage point),
    and submit -> the kubelet's verified verdict, for --count evaluations of a one-line program;
  * the dispatchers' own view, from their ``crucible_dispatcher_event_age_seconds`` histograms
    read before and after the batch (``bench.support.event_ages``): how old every event is
    when a sidecar delivers it and when it goes out on a live event stream;
  * create -> Job complete (seen by a watch) for the same evaluations, and for --count plain
    Jobs with the same image, command and security context but no wrapper, init container or
    sidecar: the difference is the instrumentation's overhead.
And where the difference goes: the kubelet's own runtime metrics (``kubelet_runtime_operations_
duration_seconds``, read through the API server before and after each batch) give, per pod, how
many containers it created and started and what each such operation took on this node: the
instrumentation's init container and sidecar are container starts the bare Job does not make.
Prints a table and writes bench/results/cluster_latency.json.

Where the tail comes from, at 4 at once on 2 cores: CPU weight. Every hop after the sidecar wakes
a dispatcher or Redis, whose pods weigh 102 (100m requested) against 522 for each evaluation pod
starting or ending beside them. ``--service-weight 2048`` gives them the weight of a node of
their own (``bench.support.cpu_weights``), all else equal, to measure the path without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import secrets
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402

from bench.support import cpu_weights, event_ages, plain_job, pod_timeline  # noqa: E402
from bench.support.cluster_watch import (  # noqa: E402
    FirstSeen,
    PubSubArrivals,
    job_watch,
    per_pod,
    pod_watch,
    runtime_ops,
)
from bench.support.pod_timeline import Run  # noqa: E402
from bench.support.stats import percentile  # noqa: E402
from tests.e2e import kube  # noqa: E402
from tests.e2e.api import TERMINAL, Dispatcher  # noqa: E402

RELEASE = "crucible-bench"
CODE = "print('bench')"
EXECUTOR = "localhost/crucible-executor-python:ci"
SWITCH_INTERVAL_SECONDS = 0.0005
MAIN_CONTAINER = "evaluation"  # the chart's Job template's and plain_job's


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 4),
        "p99": round(percentile(values, 99), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


@dataclasses.dataclass(frozen=True)
class Watches:
    jobs: FirstSeen  # complete
    pods: FirstSeen  # terminal, by Job name
    pubsub: PubSubArrivals

    def complete(self, job: str) -> tuple[float, float]:
        """When ``job`` was seen complete, and its pod terminal (0.0 if never seen)."""
        complete = self.jobs.wait(job)
        return complete, self.pods.first.get(job, 0.0)


def one_evaluation(
    api: Dispatcher, watch: Watches, runs: list[Run], ages: list[float]
) -> dict[str, float]:
    """``ages``: gets each event's age at the client (now minus its ``ts``), for every event
    but the replayed ``accepted``, to set beside the dispatcher's own histogram."""
    t0 = time.time()
    record = api.submit_ok(code=CODE)
    arrived: dict[str, float] = {}
    terminal = ""
    data: dict[str, dict[str, Any]] = {}
    verified_at = 0.0
    # The stream stays open after the sidecar's end until the kubelet's verified verdict.
    for event in api.events(record["eval_id"], timeout=300):
        now = time.time()
        arrived.setdefault(event.type, now)
        if event.type != "accepted":
            ages.append(now - float(event.data["ts"]))
        data.setdefault(event.type, event.data)
        if event.type in TERMINAL:
            terminal = terminal or event.type
            if event.data.get("verified"):
                verified_at = time.time()
                break
    assert terminal == "completed", data
    assert verified_at, data
    job_name = api.get(record["eval_id"])["job_name"]
    running = data["running"]
    exited = float(running["started_at"]) + float(data[terminal]["duration_seconds"])
    complete, pod_done = watch.complete(job_name)
    runs.append(Run(job_name, t0, complete, pod_done, float(running["started_at"])))
    built = float(data[terminal]["ts"])  # the sidecar's clock when it built the event
    published = watch.pubsub.wait(record["eval_id"])
    return {
        "submit_to_running": arrived["running"] - t0,
        "exit_to_terminal_event": arrived[terminal] - exited,
        "exit_to_redis_subscriber": published - exited,
        "exit_to_sidecar_built_event": built - exited,
        "sidecar_built_to_client": arrived[terminal] - built,
        "sidecar_built_to_redis_subscriber": published - built,
        "submit_to_terminal_event": arrived[terminal] - t0,
        "submit_to_verified_event": verified_at - t0,
        "create_to_job_complete": complete - t0,
    }


def one_plain(
    batch: kubernetes.client.BatchV1Api, namespace: str, watch: Watches, runs: list[Run]
) -> float:
    name = f"plain-{secrets.token_hex(4)}"
    t0 = time.time()
    # A plain dict, as the dispatcher creates its Jobs; the client's stubs want a V1Job.
    job = plain_job.manifest(name, EXECUTOR, CODE)
    batch.create_namespaced_job(namespace, job)  # type: ignore[arg-type]
    complete, pod_done = watch.complete(name)
    runs.append(Run(name, t0, complete, pod_done))
    return complete - t0


def install(namespace: str, values: list[Path]) -> None:
    helm = kube.helm_binary()
    assert helm, "helm not found"
    kube.kubectl("create", "namespace", namespace)
    kube.run(
        helm, "install", RELEASE, str(kube.CHART), "--namespace", namespace,
        "--values", str(REPO / "tests/e2e/values.yaml"),
        *(arg for path in values for arg in ("--values", str(path))),
        "--wait", "--timeout", "300s",
        timeout=330,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = args.namespace or f"crucible-bench-{secrets.token_hex(3)}"
    if not args.namespace:
        try:
            install(namespace, args.values)
        except BaseException:
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
            raise
    if args.service_weight:
        cpu_weights.set_shares(namespace, args.service_weight, args.weighted)
    weights = cpu_weights.shares(namespace)
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    batch = kubernetes.client.BatchV1Api()
    runtime = pod_timeline.Runtime()
    token = kube.secret_value(namespace, f"{RELEASE}-api-tokens", "tokens").split()[0]
    redis_password = kube.secret_value(namespace, f"{RELEASE}-redis", "dispatcher-password")
    runs: list[Run] = []
    client_ages: list[float] = []
    plain_runs: list[Run] = []
    job_seen = job_watch(batch, namespace)
    pod_seen = pod_watch(kubernetes.client.CoreV1Api(), namespace)
    try:
        with (
            kube.service_endpoint(namespace, f"{RELEASE}-redis", 6379) as redis_at,
            kube.service_endpoint(namespace, f"{RELEASE}-dispatcher", 8080) as (host, port),
        ):
            watch = Watches(job_seen, pod_seen, PubSubArrivals(*redis_at, redis_password))
            api = Dispatcher(f"http://{host}:{port}", token)
            one_evaluation(api, watch, [], [])  # warm-up: first pod of each image, not measured
            one_plain(batch, namespace, watch, [])
            ops_before = runtime_ops()
            ages_before = event_ages.scrape(namespace, token)
            started = time.time()
            with ThreadPoolExecutor(args.concurrency) as pool:
                evaluations = list(
                    pool.map(
                        lambda _: one_evaluation(api, watch, runs, client_ages), range(args.count)
                    )
                )
            instrumented_seconds = time.time() - started
            ages = event_ages.scrape(namespace, token).since(ages_before)
            ops_between = runtime_ops()
            started = time.time()
            with ThreadPoolExecutor(args.concurrency) as pool:
                plain = list(
                    pool.map(
                        lambda _: one_plain(batch, namespace, watch, plain_runs), range(args.count)
                    )
                )
            plain_seconds = time.time() - started
            ops_after = runtime_ops()
            pods = runtime.pods(namespace)
    finally:
        job_seen.stop.set()
        pod_seen.stop.set()
        if not args.namespace and not args.keep:
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    phases = {
        "instrumented": pod_timeline.summarize(runs, pods, MAIN_CONTAINER),
        "plain": pod_timeline.summarize(plain_runs, pods, MAIN_CONTAINER),
    }
    instrumented = {k: summary([e[k] for e in evaluations]) for k in evaluations[0]}
    plain_summary = summary(plain)
    return {
        "benchmark": "cluster_latency",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "count": args.count,
        "concurrency": args.concurrency,
        "service_cpu_shares": weights,
        "seconds": {"instrumented": instrumented, "plain_job_create_to_complete": plain_summary},
        "overhead_create_to_complete_seconds": {
            "p50": round(instrumented["create_to_job_complete"]["p50"] - plain_summary["p50"], 4),
            "p99": round(instrumented["create_to_job_complete"]["p99"] - plain_summary["p99"], 4),
        },
        "phases_p50_seconds": {
            kind: {phase: round(percentile(v, 50), 4) for phase, v in found.items()}
            for kind, found in phases.items()
        },
        "kubelet_runtime_operations": {
            "instrumented": per_pod(ops_before, ops_between, args.count),
            "plain": per_pod(ops_between, ops_after, args.count),
        },
        # Every event of the batch, not the terminal ones alone; from the histogram's buckets.
        "event_age_in_the_dispatcher_seconds": {
            at: {f"p{q}": ages.quantile(at, q / 100) for q in (50, 99)} for at in event_ages.PLACES
        },
        "event_age_at_the_client_seconds": summary(client_ages),
        "throughput_per_minute": {
            "instrumented": round(args.count / instrumented_seconds * 60, 1),
            "plain": round(args.count / plain_seconds * 60, 1),
        },
    }


def print_phases(phases: dict[str, dict[str, float]]) -> None:
    """Each phase's p50, instrumented next to bare, and what the instrumentation adds."""
    instrumented, plain = phases["instrumented"], phases["plain"]
    print(f"{'phase (p50, CRI times)':<34}{'instr. s':>10}{'bare s':>10}{'added s':>10}")
    for phase, seconds in instrumented.items():
        bare = plain.get(phase)
        added = seconds - (bare or 0.0)
        shown_bare = f"{bare:>10.3f}" if bare is not None else f"{'-':>10}"
        print(f"{phase:<34}{seconds:>10.3f}{shown_bare}{added:>10.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--namespace", help="use the release already installed there")
    parser.add_argument("--keep", action="store_true", help="keep the namespace afterwards")
    parser.add_argument(
        "--values", type=Path, action="append", default=[],
        help="more chart values (e.g. tests/e2e/plain-sidecar-values.yaml)",
    )  # fmt: skip
    parser.add_argument(
        "--service-weight", type=int, metavar="SHARES",
        help="experiment: write this cpu.shares into the dispatcher and Redis pods' cgroups "
        "(cgroup v1, this node; the chart's 100m gives 102, an evaluation pod 522)",
    )  # fmt: skip
    parser.add_argument(
        "--weighted", nargs="+", choices=cpu_weights.SERVICE_COMPONENTS,
        default=list(cpu_weights.SERVICE_COMPONENTS),
        help="the pods --service-weight applies to (default: both)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cluster_latency.json")
    args = parser.parse_args()
    # A run stopped by `timeout` or kill still deletes its namespace (one left behind holds
    # CPU requests on the node, and the next run fits fewer evaluations at once).
    signal.signal(signal.SIGTERM, lambda number, _: sys.exit(128 + number))
    # The watches' threads parse big pod objects: a thread holding an event waits for the GIL
    # at most this long (5 ms by default), so its arrival time is not the parser's.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    problem = kube.cluster_problem()
    if problem:
        print(f"cluster_latency: skipped, {problem}")
        return 0
    result = run(args)
    seconds = result["seconds"]
    print(f"{'measure':<34}{'p50 s':>10}{'p99 s':>10}   (n={args.count}, c={args.concurrency})")
    for name, stats in seconds["instrumented"].items():
        print(f"{name:<34}{stats['p50']:>10.3f}{stats['p99']:>10.3f}")
    plain = seconds["plain_job_create_to_complete"]
    print(f"{'plain Job create_to_job_complete':<34}{plain['p50']:>10.3f}{plain['p99']:>10.3f}")
    overhead = result["overhead_create_to_complete_seconds"]
    print(f"{'instrumentation overhead':<34}{overhead['p50']:>10.3f}{overhead['p99']:>10.3f}")
    for at, stats in result["event_age_in_the_dispatcher_seconds"].items():
        shown = "  ".join(
            f"{q} {v * 1000:.1f} ms" if v is not None else f"{q} -" for q, v in stats.items()
        )
        print(f"event age in the dispatcher at {at}: {shown} (buckets, every event of the batch)")
    client = result["event_age_at_the_client_seconds"]
    print(
        f"event age at the SSE client: p50 {client['p50'] * 1000:.1f} ms  "
        f"p99 {client['p99'] * 1000:.1f} ms (every event but the replayed accepted)"
    )
    print(f"throughput per minute: {result['throughput_per_minute']}")
    print(f"dispatcher and Redis pods' cpu.shares: {result['service_cpu_shares']}")
    print_phases(result["phases_p50_seconds"])
    print("kubelet runtime operations per pod (count x mean seconds):")
    for kind, ops in result["kubelet_runtime_operations"].items():
        shown = ", ".join(f"{op} {v['per_pod']} x {v['mean_seconds']:.3f}" for op, v in ops.items())
        print(f"  {kind:<13} {shown}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
