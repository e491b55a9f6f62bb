"""Latency of evaluations on a real cluster, and what the instrumentation costs.

    python bench/cluster_latency.py [--count 50] [--concurrency 4] [--namespace NS]

Needs KUBECONFIG (tests/cluster/up.sh) and the locally built images (tests/cluster/images.sh).
Installs the chart with tests/e2e/values.yaml into a fresh namespace (or uses the release
already in --namespace), then measures, all on this machine's clock:
  * submit -> `running` event at the client (SSE), the wrapper's exit -> the terminal event at
    the client, and submit -> the kubelet's verified verdict, for --count evaluations of a
    one-line program;
  * create -> Job complete (seen by a watch) for the same evaluations, and for --count plain
    Jobs with the same image, command and security context but no wrapper, init container or
    sidecar: the difference is the instrumentation's overhead.
And where the difference goes: the kubelet's own runtime metrics (``kubelet_runtime_operations_
duration_seconds``, read through the API server before and after each batch) give, per pod, how
many containers it created and started and what each such operation took on this node: the
instrumentation's init container and sidecar are container starts the bare Job does not make.
Prints a table and writes bench/results/cluster_latency.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402

from tests.e2e import kube  # noqa: E402
from tests.e2e.api import TERMINAL, Dispatcher  # noqa: E402

RELEASE = "crucible-bench"
CODE = "print('bench')"
EXECUTOR = "localhost/crucible-executor-python:ci"


class JobWatch:
    """Client-clock time at which each Job of a namespace was first seen finished."""

    def __init__(self, batch: kubernetes.client.BatchV1Api, namespace: str) -> None:
        self.batch = batch
        self.namespace = namespace
        self.finished: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            for event in watch.stream(  # type: ignore[no-untyped-call]
                self.batch.list_namespaced_job, self.namespace, timeout_seconds=30
            ):
                job = event["object"].to_dict()
                name = job["metadata"]["name"]
                conditions = (job.get("status") or {}).get("conditions") or []
                done = any(
                    c["status"] == "True" and c["type"] in ("Complete", "SuccessCriteriaMet")
                    for c in conditions
                )
                if done and name not in self.finished:
                    with self.changed:
                        self.finished[name] = time.time()
                        self.changed.notify_all()
                if self.stop.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]

    def wait(self, name: str, timeout: float = 300) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: name in self.finished, timeout=timeout):
                raise TimeoutError(f"job {name} not complete after {timeout}s")
            return self.finished[name]


_RUNTIME_OP = re.compile(
    r'^kubelet_runtime_operations_duration_seconds_(sum|count)\{operation_type="(\w+)"\} (\S+)$'
)
_OPS = ("run_podsandbox", "create_container", "start_container")


def runtime_ops() -> dict[str, tuple[float, float]]:
    """The kubelet's (seconds, count) per runtime operation so far, summed over the nodes."""
    totals: dict[str, list[float]] = {op: [0.0, 0.0] for op in _OPS}
    for node in kube.kubectl_json("get", "nodes")["items"]:
        name = node["metadata"]["name"]
        text = kube.kubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/metrics", timeout=60)
        for line in text.splitlines():
            match = _RUNTIME_OP.match(line)
            if match and match.group(2) in totals:
                totals[match.group(2)][0 if match.group(1) == "sum" else 1] += float(match[3])
    return {op: (seconds, count) for op, (seconds, count) in totals.items()}


def per_pod(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]], pods: int
) -> dict[str, dict[str, float]]:
    """Per pod of a batch: how often each operation ran and its mean duration."""
    result = {}
    for op in _OPS:
        seconds = after[op][0] - before[op][0]
        count = after[op][1] - before[op][1]
        result[op] = {
            "per_pod": round(count / pods, 2),
            "mean_seconds": round(seconds / count, 4) if count else 0.0,
        }
    return result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[rank]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 4),
        "p99": round(percentile(values, 99), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def one_evaluation(api: Dispatcher, watch: JobWatch) -> dict[str, float]:
    t0 = time.time()
    record = api.submit_ok(code=CODE)
    arrived: dict[str, float] = {}
    terminal = ""
    data: dict[str, dict[str, Any]] = {}
    verified_at = 0.0
    # The stream stays open after the sidecar's end until the kubelet's verified verdict.
    for event in api.events(record["eval_id"], timeout=300):
        arrived.setdefault(event.type, time.time())
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
    return {
        "submit_to_running": arrived["running"] - t0,
        "exit_to_terminal_event": arrived[terminal] - exited,
        "submit_to_terminal_event": arrived[terminal] - t0,
        "submit_to_verified_event": verified_at - t0,
        "create_to_job_complete": watch.wait(job_name) - t0,
    }


def plain_job(name: str) -> dict[str, Any]:
    """The same workload as an evaluation, minus wrapper, init container and sidecar."""
    restricted = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"crucible.dev/bench": "plain"}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "evaluation",
                            "image": EXECUTOR,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-u", "-c", CODE],
                            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
                            "securityContext": restricted,
                        }
                    ],
                }
            },
        },
    }


def one_plain(batch: kubernetes.client.BatchV1Api, namespace: str, watch: JobWatch) -> float:
    name = f"plain-{secrets.token_hex(4)}"
    t0 = time.time()
    # A plain dict, as the dispatcher creates its Jobs; the client's stubs want a V1Job.
    batch.create_namespaced_job(namespace, plain_job(name))  # type: ignore[arg-type]
    return watch.wait(name) - t0


def install(namespace: str) -> None:
    helm = kube.helm_binary()
    assert helm, "helm not found"
    kube.kubectl("create", "namespace", namespace)
    kube.run(
        helm, "install", RELEASE, str(kube.CHART), "--namespace", namespace,
        "--values", str(REPO / "tests/e2e/values.yaml"), "--wait", "--timeout", "300s",
        timeout=330,
    )  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = args.namespace or f"crucible-bench-{secrets.token_hex(3)}"
    if not args.namespace:
        install(namespace)
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    batch = kubernetes.client.BatchV1Api()
    watch = JobWatch(batch, namespace)
    token = kube.secret_value(namespace, f"{RELEASE}-api-tokens", "tokens").split()[0]
    try:
        with kube.service_endpoint(namespace, f"{RELEASE}-dispatcher", 8080) as (host, port):
            api = Dispatcher(f"http://{host}:{port}", token)
            one_evaluation(api, watch)  # warm-up: first pod of each image, not measured
            one_plain(batch, namespace, watch)
            ops_before = runtime_ops()
            started = time.time()
            with ThreadPoolExecutor(args.concurrency) as pool:
                evaluations = list(
                    pool.map(lambda _: one_evaluation(api, watch), range(args.count))
                )
            instrumented_seconds = time.time() - started
            ops_between = runtime_ops()
            started = time.time()
            with ThreadPoolExecutor(args.concurrency) as pool:
                plain = list(
                    pool.map(lambda _: one_plain(batch, namespace, watch), range(args.count))
                )
            plain_seconds = time.time() - started
            ops_after = runtime_ops()
    finally:
        watch.stop.set()
        if not args.namespace and not args.keep:
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    instrumented = {k: summary([e[k] for e in evaluations]) for k in evaluations[0]}
    plain_summary = summary(plain)
    return {
        "benchmark": "cluster_latency",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "count": args.count,
        "concurrency": args.concurrency,
        "seconds": {"instrumented": instrumented, "plain_job_create_to_complete": plain_summary},
        "overhead_create_to_complete_seconds": {
            "p50": round(instrumented["create_to_job_complete"]["p50"] - plain_summary["p50"], 4),
            "p99": round(instrumented["create_to_job_complete"]["p99"] - plain_summary["p99"], 4),
        },
        "kubelet_runtime_operations": {
            "instrumented": per_pod(ops_before, ops_between, args.count),
            "plain": per_pod(ops_between, ops_after, args.count),
        },
        "throughput_per_minute": {
            "instrumented": round(args.count / instrumented_seconds * 60, 1),
            "plain": round(args.count / plain_seconds * 60, 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--namespace", help="use the release already installed there")
    parser.add_argument("--keep", action="store_true", help="keep the namespace afterwards")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/cluster_latency.json")
    args = parser.parse_args()
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
    print(f"throughput per minute: {result['throughput_per_minute']}")
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
