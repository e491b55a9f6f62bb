"""Cluster access for the end-to-end tests: kubectl and helm, Service endpoints, a Job waiter.

pytest-helm-charts' ``wait_for_jobs_to_complete`` looks only at a Job's first condition; since
Kubernetes 1.31 that is ``SuccessCriteriaMet`` or ``FailureTarget``, not ``Complete``, so
``job_outcome`` scans all of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "crucible"
SUCCESS_CONDITIONS = ("Complete", "SuccessCriteriaMet")
FAILURE_CONDITIONS = ("Failed", "FailureTarget")


def helm_binary() -> str | None:
    """CRUCIBLE_HELM, else helm on PATH, else the one build-tools.sh put in the cache."""
    explicit = os.environ.get("CRUCIBLE_HELM")
    if explicit:
        return explicit
    found = shutil.which("helm")
    if found:
        return found
    pinned = re.search(r"HELM_VERSION:-([0-9.]+)", (REPO / "tests/cluster/versions.sh").read_text())
    cache = Path(os.environ.get("CRUCIBLE_CACHE", Path.home() / ".cache/crucible"))
    if pinned and (cache / "bin" / f"helm-{pinned.group(1)}").exists():
        return str(cache / "bin" / f"helm-{pinned.group(1)}")
    return None


def run(*argv: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])}... exited {result.returncode}: {result.stderr}")
    return result


def kubectl(*args: str, timeout: float = 60, check: bool = True) -> str:
    return run("kubectl", *args, timeout=timeout, check=check).stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def cluster_problem() -> str | None:
    """Why the end-to-end tests cannot run here, or None if they can."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        return "no cluster: KUBECONFIG is not set (start one: sudo tests/cluster/up.sh)"
    if not Path(kubeconfig).exists():
        return f"no cluster: KUBECONFIG={kubeconfig} does not exist"
    if shutil.which("kubectl") is None:
        return "kubectl is not on PATH"
    if helm_binary() is None:
        return "helm not found (tests/cluster/build-tools.sh helm, or set CRUCIBLE_HELM)"
    try:
        probe = run("kubectl", "get", "--raw", "/readyz", timeout=15, check=False)
    except subprocess.TimeoutExpired:
        return f"cluster in {kubeconfig} did not answer within 15s"
    if probe.returncode != 0:
        return f"cluster in {kubeconfig} is unreachable: {probe.stderr.strip()[:300]}"
    return None


def job_outcome(job: dict[str, Any]) -> str | None:
    """'succeeded', 'failed', or None while the Job runs; any condition counts, not the first."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in SUCCESS_CONDITIONS:
            return "succeeded"
        if condition.get("type") in FAILURE_CONDITIONS:
            return "failed"
    return None


def wait_for_job(namespace: str, name: str, timeout: float) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        job = kubectl_json("get", "job", name, "-n", namespace)
        outcome = job_outcome(job)
        if outcome is not None:
            return outcome, job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {namespace}/{name} unfinished after {timeout}s: {job}")
        time.sleep(0.5)


def tcp_reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def service_endpoint(namespace: str, service: str, port: int) -> Iterator[tuple[str, int]]:
    """(host, port) of a Service: its ClusterIP when this machine routes to it (kube-proxy on
    the node), else a `kubectl port-forward` for the duration (a kind cluster, a remote one)."""
    cluster_ip = kubectl(
        "get", "service", service, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    ).strip()
    if cluster_ip and tcp_reachable(cluster_ip, port):
        yield cluster_ip, port
        return
    forward = subprocess.Popen(
        ["kubectl", "port-forward", "-n", namespace, f"service/{service}", f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match, f"kubectl port-forward said: {line}"
        yield "127.0.0.1", int(match.group(1))
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def diagnose(namespace: str) -> str:
    """Events and the last log lines of every container that restarted or is not ready."""
    lines = [kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)]
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json", check=False) or "{}")
    for pod in pods.get("items", []):
        name = pod["metadata"]["name"]
        status = pod.get("status", {})
        for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
            if c.get("ready") and not c.get("restartCount"):
                continue
            previous = ["--previous"] if c.get("restartCount") else []
            logs = kubectl(
                "logs", "-n", namespace, name, "-c", c["name"], "--tail=15", *previous,
                check=False,
            )  # fmt: skip
            lines.append(f"--- {name}/{c['name']} ({c.get('restartCount', 0)} restarts)\n{logs}")
    return "\n".join(lines)


def secret_value(namespace: str, name: str, key: str) -> str:
    import base64

    data = kubectl_json("get", "secret", name, "-n", namespace)["data"]
    return base64.b64decode(data[key]).decode()
