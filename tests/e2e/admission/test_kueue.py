"""Admission handed to Kueue on a real cluster (tests/cluster/kueue.sh runs its controller
manager): crucible creates every Job at once, suspended and labelled for the LocalQueue; Kueue's
quota decides how many run, the waiting ones are `pending` with the reason, and a suspended one
cancels like any other. And Kubernetes counts a Job's deadline from its admission, not its
creation."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher.backends.kube.jobs import instrument
from dispatcher.backends.kube.watch import verdicts
from tests.e2e import kube
from tests.e2e.conftest import VALUES, Release, installed

KUEUE_VALUES = kube.REPO / "tests" / "e2e" / "kueue-values.yaml"
LOCAL_QUEUE = "crucible-e2e"  # kueue-values.yaml
CLUSTER_QUEUE = "crucible-e2e"
FLAVOR = "default"
# An evaluation's pod asks for 510m CPU: 500m for the user's code, 10m for the sidecar (the
# copy init container's 10m runs before them). 1200m holds two, never three.
CPU_QUOTA = "1200m"
FITS = 2


def apply(*objects: dict[str, Any], namespace: str | None = None) -> None:
    where = ["--namespace", namespace] if namespace else []
    items = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    done = subprocess.run(
        ["kubectl", "apply", *where, "-f", "-"],
        input=items, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def kueue_release(cluster_available: None) -> Iterator[Release]:
    crd = kube.kubectl("get", "crd", "clusterqueues.kueue.x-k8s.io", check=False)
    if "clusterqueues" not in crd:
        pytest.fail("Kueue is not installed: tests/cluster/up.sh starts it (kueue.sh)")
    apply(
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
         "metadata": {"name": FLAVOR}},
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
         "metadata": {"name": CLUSTER_QUEUE},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{
             "coveredResources": ["cpu", "memory"],
             "flavors": [{"name": FLAVOR, "resources": [
                 {"name": "cpu", "nominalQuota": CPU_QUOTA},
                 {"name": "memory", "nominalQuota": "2Gi"}]}]}]}},
    )  # fmt: skip
    try:
        with installed(VALUES, KUEUE_VALUES) as release:
            apply(
                {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                 "metadata": {"name": LOCAL_QUEUE, "namespace": release.namespace},
                 "spec": {"clusterQueue": CLUSTER_QUEUE}},
            )  # fmt: skip
            yield release
    finally:
        # The flavor only once no ClusterQueue uses it (Kueue's finalizer holds it till then).
        kube.kubectl("delete", "clusterqueue", CLUSTER_QUEUE, "--ignore-not-found", check=False)
        kube.kubectl("delete", "resourceflavor", FLAVOR, "--ignore-not-found", check=False)


class JobSampler:
    """Samples the namespace's Jobs: the most admitted (unsuspended, not finished) at once, the
    most suspended meanwhile, and every Job seen."""

    def __init__(self, release: Release) -> None:
        self.release = release
        self.admitted = self.held_while_full = 0
        self.seen: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.3):
            jobs = self.release.jobs()
            admitted = sum(1 for j in jobs if not j["spec"].get("suspend") and not finished(j))
            held = sum(1 for j in jobs if j["spec"].get("suspend"))
            self.admitted = max(self.admitted, admitted)
            if admitted == FITS:
                self.held_while_full = max(self.held_while_full, held)
            for job in jobs:
                self.seen.setdefault(job["metadata"]["name"], job)


def finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return dict(c)
    return None


def sleeper(word: str) -> str:
    return f"import time; time.sleep(4); print('{word}')"


def test_kueue_holds_jobs_past_its_quota_and_starts_them_in_turn(kueue_release: Release) -> None:
    api = kueue_release.api
    sampler = JobSampler(kueue_release)
    try:
        ids = [
            api.submit_ok(code=sleeper(f"k{i}"), resources={"cpu": "500m", "memory": "128Mi"})[
                "eval_id"
            ]
            for i in range(4)
        ]
        records = [api.wait_verified(eval_id, timeout=240) for eval_id in ids]
    finally:
        sampler.stop.set()
        sampler.thread.join()
    for i, record in enumerate(records):
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert api.output(record["eval_id"])["stdout"] == f"k{i}\n"
    assert 0 < sampler.admitted <= FITS, sampler.admitted
    assert sampler.held_while_full > 0  # Kueue, not crucible, held the rest
    for record in records:
        job = kueue_release.job(record["job_name"])
        assert job["metadata"]["labels"][instrument.KUEUE_QUEUE_LABEL] == LOCAL_QUEUE
        # Created suspended, then resumed by Kueue: the Job controller says so.
        suspended = condition(job, "Suspended")
        assert suspended is not None, job["status"]
        assert (suspended["status"], suspended["reason"]) == ("False", "JobResumed")
    waits = [
        [e.data.get("reason") for e in api.events(eval_id) if e.type == "pending"]
        for eval_id in ids
    ]
    assert sum(verdicts.SUSPENDED in reasons for reasons in waits) >= len(ids) - FITS, waits


def test_a_suspended_evaluation_cancels_and_leaves_no_job(kueue_release: Release) -> None:
    api = kueue_release.api
    # Running before the next is submitted, and long enough to hold the quota throughout:
    # Jobs created in the same second tie in Kueue's queue, so one submitted at once after them
    # could be admitted ahead of one of them.
    busy = [
        api.submit_ok(
            code="import time; time.sleep(120)", resources={"cpu": "500m", "memory": "128Mi"}
        )
        for _ in range(FITS)
    ]
    for held in busy:
        api.wait(held["eval_id"], lambda r: r["status"] == "running", 120, "running")
    waiting = api.submit_ok(code="print('never')", resources={"cpu": "500m", "memory": "128Mi"})
    record = api.wait(
        waiting["eval_id"], lambda r: r["status"] == "pending", 120, "pending (held by Kueue)"
    )
    assert record["reason"] == verdicts.SUSPENDED
    assert kueue_release.job(record["job_name"])["spec"]["suspend"] is True
    assert api.cancel(waiting["eval_id"]).status_code == 202
    assert api.wait_verified(waiting["eval_id"])["status"] == "cancelled"
    names = {job["metadata"]["name"] for job in kueue_release.jobs()}
    assert record["job_name"] not in names
    assert api.output(waiting["eval_id"])["stdout"] == ""
    for held in busy:  # the quota back for the next test
        assert api.cancel(held["eval_id"]).status_code == 202
        assert api.wait_verified(held["eval_id"])["status"] == "cancelled"


def test_a_jobs_deadline_counts_from_when_it_is_resumed(kueue_release: Release) -> None:
    """Why a Job held by Kueue needs no longer ``activeDeadlineSeconds``: Kubernetes clears the
    Job's startTime while it is suspended and starts the deadline when it is resumed."""
    namespace, name, deadline = kueue_release.namespace, "deadline-after-resume", 10
    apply(bare_job(name, deadline), namespace=namespace)
    created = time.monotonic()
    while time.monotonic() - created < deadline + 2:  # held past its deadline
        assert "startTime" not in (kueue_release.job(name).get("status") or {})
        time.sleep(0.5)
    kube.kubectl("patch", "job", name, "-n", namespace, "-p", '{"spec":{"suspend":false}}')
    outcome, job = kube.wait_for_job(namespace, name, timeout=120)
    assert outcome == "succeeded", job["status"]
    resumed = condition(job, "Suspended")
    assert resumed is not None
    assert resumed["reason"] == "JobResumed"
    assert job["status"]["startTime"] >= resumed["lastTransitionTime"]


def bare_job(name: str, deadline: int) -> dict[str, Any]:
    """A suspended Job that no queue manages (no queue label), Pod Security "restricted"."""
    container = {
        "name": "main",
        "image": "localhost/crucible-executor-python:ci",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-c", "print(1)"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    pod = {"restartPolicy": "Never", "automountServiceAccountToken": False,
           "containers": [container]}  # fmt: skip
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"suspend": True, "activeDeadlineSeconds": deadline, "backoffLimit": 0,
                 "template": {"spec": pod}},
    }  # fmt: skip
