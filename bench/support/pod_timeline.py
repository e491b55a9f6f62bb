"""Where a pod's start-up and end go, container by container, to the millisecond.

The API server's pod status has whole seconds; the container runtime keeps nanoseconds. This
asks the node's CRI (``crictl``, built from the Go module proxy by tests/cluster/build-tools.sh
on first use) for each pod's sandbox and containers, and turns their created/started/finished
times into phases. The in-VM cluster has one node and its runtime socket is on this machine, so
the runtime's clock is the benchmark's.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "tests" / "cluster"

# The instrumentation's containers, as dispatcher/backends/kube/jobs/instrument.py names them.
COPY = "crucible-wrapper-copy"
SIDECAR = "crucible-sidecar"
JOB_LABEL = "batch.kubernetes.io/job-name"
SEEN_ANNOTATION = "kubernetes.io/config.seen"


@dataclass(frozen=True)
class Container:
    name: str
    started: float
    finished: float  # 0.0 while it runs


@dataclass(frozen=True)
class Pod:
    job: str
    kubelet_seen: float  # the kubelet first saw the pod (its config.seen annotation)
    sandbox_created: float
    containers: dict[str, Container]


@dataclass(frozen=True)
class Run:
    """One Job as the benchmark saw it, on this machine's clock."""

    job: str
    asked: float  # the evaluation submitted, or the bare Job created
    complete: float  # the Job first seen complete
    pod_terminal: float  # its pod first seen Succeeded or Failed (0.0: not seen)
    child_spawned: float = 0.0  # the wrapper's child started (the `running` event's started_at)


def _shell_value(expression: str) -> str:
    script = f". {CLUSTER}/versions.sh && . {CLUSTER}/cluster-env.sh && echo {expression}"
    return subprocess.run(
        ["bash", "-c", script], check=True, capture_output=True, text=True
    ).stdout.strip()


class Runtime:
    """The node's CRI, through crictl."""

    def __init__(self) -> None:
        self.crictl = _shell_value("$CRUCIBLE_BIN/crictl-$CRICTL_VERSION")
        if not Path(self.crictl).exists():
            subprocess.run(["bash", str(CLUSTER / "build-tools.sh"), "crictl"], check=True)
        self.endpoint = "unix://" + _shell_value("$CONTAINERD_SOCK")

    def _json(self, command: str, *args: str) -> dict[str, object]:
        # Options before arguments: crictl stops reading options at the first argument.
        out = subprocess.run(
            [self.crictl, "--runtime-endpoint", self.endpoint, command, "-o", "json", *args],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        result: dict[str, object] = json.loads(out)
        return result

    def pods(self, namespace: str) -> dict[str, Pod]:
        """Every Job's pod of ``namespace`` the node still has, by Job name."""
        sandboxes = self._json("pods", "--namespace", namespace)["items"]
        assert isinstance(sandboxes, list)
        result = {}
        for sandbox in sandboxes:
            job = (sandbox.get("labels") or {}).get(JOB_LABEL)
            if not job:
                continue  # not a Job's pod (the release's dispatchers and Redis)
            containers = self._json("ps", "-a", "--pod", sandbox["id"])["containers"]
            assert isinstance(containers, list)
            times = {}
            for container in containers:
                try:
                    status = self._json("inspect", container["id"])["status"]
                except subprocess.CalledProcessError:
                    continue  # removed meanwhile (the kubelet's garbage collection)
                assert isinstance(status, dict)
                name = status["metadata"]["name"]
                times[name] = Container(
                    name, _seconds(status.get("startedAt")), _seconds(status.get("finishedAt"))
                )
            seen = _seconds((sandbox.get("annotations") or {}).get(SEEN_ANNOTATION))
            result[job] = Pod(job, seen, int(sandbox["createdAt"]) / 1e9, times)
        return result


def _seconds(stamp: object) -> float:
    """An RFC 3339 time with nanoseconds (the CRI's zero time for "not yet") as epoch seconds."""
    if not isinstance(stamp, str) or stamp.startswith("0001-") or stamp.startswith("1970-"):
        return 0.0
    whole, _, rest = stamp.rstrip("Z").partition(".")
    fraction = "".join(c for c in rest if c.isdigit())
    base = datetime.fromisoformat(whole + "+00:00").timestamp()
    return base + (float("0." + fraction) if fraction else 0.0)


def phases(pod: Pod, main: str, run: Run) -> dict[str, float]:
    """Seconds per phase of one pod, from the evaluation's submission or the bare Job's creation
    to the Job seen complete. The instrumentation's phases are only in an instrumented pod."""
    c = pod.containers
    first = c[COPY].started if COPY in c else c[main].started
    last_end = max(x.finished for x in c.values())
    result = {"asked_to_kubelet_seen": pod.kubelet_seen - run.asked}
    result["kubelet_seen_to_sandbox"] = pod.sandbox_created - pod.kubelet_seen
    result["sandbox_to_first_start"] = first - pod.sandbox_created
    if COPY in c and SIDECAR in c:
        result["wrapper_copy"] = c[COPY].finished - c[COPY].started
        result["copy_end_to_sidecar_start"] = c[SIDECAR].started - c[COPY].finished
        result["sidecar_start_to_main_start"] = c[main].started - c[SIDECAR].started
    if run.child_spawned:
        result["main_start_to_child_spawn"] = run.child_spawned - c[main].started
        result["child_run"] = c[main].finished - run.child_spawned
    else:
        result["child_run"] = c[main].finished - c[main].started
    result["main_end_to_last_end"] = last_end - c[main].finished
    if run.pod_terminal:
        result["last_end_to_pod_terminal"] = run.pod_terminal - last_end
        result["pod_terminal_to_job_complete"] = run.complete - run.pod_terminal
    else:
        result["last_end_to_job_complete"] = run.complete - last_end
    return result


def summarize(runs: list[Run], pods: dict[str, Pod], main: str) -> dict[str, list[float]]:
    """Each phase's seconds over ``runs`` whose pod the node still has."""
    result: dict[str, list[float]] = {}
    for run in runs:
        pod = pods.get(run.job)
        if pod is None or main not in pod.containers:
            continue
        for phase, seconds in phases(pod, main, run).items():
            result.setdefault(phase, []).append(seconds)
    return result
