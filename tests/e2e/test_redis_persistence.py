"""Redis on a PersistentVolumeClaim, the chart's default: what it recorded outlives its pod.

The claim names no storage class, so it is the cluster's default that provisions it (local-path
in the test cluster, started by tests/cluster/storage.sh, as kind ships it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import kube
from tests.e2e.api import Dispatcher, SseEvent
from tests.e2e.conftest import VALUES, Release, installed

PERSISTENCE_VALUES = kube.REPO / "tests" / "e2e" / "persistence-values.yaml"
DEFAULT_STORAGE_CLASS = "local-path"


@pytest.fixture(scope="module")
def persistent(cluster_available: None) -> Iterator[Release]:
    with installed(VALUES, PERSISTENCE_VALUES) as release:
        yield release


def redis_pod(release: Release) -> dict[str, Any]:
    pod: dict[str, Any] = kube.kubectl_json(
        "get", "pod", f"{release.name}-redis-0", "-n", release.namespace
    )
    return pod


def claim(release: Release) -> dict[str, Any]:
    pvc: dict[str, Any] = kube.kubectl_json(
        "get", "pvc", f"data-{release.name}-redis-0", "-n", release.namespace
    )
    return pvc


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def wait_for_new_ready_pod(release: Release, old_uid: str, timeout: float) -> dict[str, Any]:
    """The StatefulSet's replacement of the deleted pod, once it is Ready."""
    name = f"{release.name}-redis-0"
    deadline = time.monotonic() + timeout
    while True:
        found = kube.kubectl("get", "pod", name, "-n", release.namespace, "-o", "json", check=False)
        pod: dict[str, Any] = json.loads(found) if found else {}
        if pod and pod["metadata"]["uid"] != old_uid and is_ready(pod):
            return pod
        if time.monotonic() > deadline:
            details = kube.diagnose(release.namespace)
            raise AssertionError(f"no new Ready pod {name} after {timeout}s\n{details}")
        time.sleep(0.5)


def wait_api_ready(api: Dispatcher, timeout: float) -> None:
    """/readyz answers 200 once the dispatcher reaches Redis again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = api.session.get(api.url("/readyz"), timeout=10).status_code
        except OSError:
            status = 0
        if status == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"dispatcher not ready {timeout}s after Redis restarted: {status}")
        time.sleep(0.5)


def summary(events: list[SseEvent]) -> list[tuple[str, str, int]]:
    return [(e.id, e.type, e.data["seq"]) for e in events]


def test_the_claim_is_bound_by_the_default_storage_class(persistent: Release) -> None:
    pvc = claim(persistent)
    assert pvc["status"]["phase"] == "Bound", pvc["status"]
    assert pvc["spec"]["storageClassName"] == DEFAULT_STORAGE_CLASS
    volume = kube.kubectl_json("get", "pv", pvc["spec"]["volumeName"])
    assert volume["spec"]["storageClassName"] == DEFAULT_STORAGE_CLASS
    assert volume["spec"]["claimRef"]["namespace"] == persistent.namespace
    pod_volumes = {v["name"]: v for v in redis_pod(persistent)["spec"]["volumes"]}
    assert pod_volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_a_finished_evaluation_outlives_the_redis_pod(persistent: Release) -> None:
    api = persistent.api
    record = api.submit_ok(code="import sys\nprint('kept', 6 * 7)\nsys.exit(4)")
    eval_id = record["eval_id"]
    before = api.wait_verified(eval_id)
    assert (before["status"], before["exit_code"]) == ("failed", 4), before
    assert before["output"] == "kept 42\n"
    events_before = list(api.events(eval_id, timeout=60))
    assert events_before[-1].type == "failed", summary(events_before)
    volume_name = claim(persistent)["spec"]["volumeName"]

    old = redis_pod(persistent)
    kube.kubectl("delete", "pod", old["metadata"]["name"], "-n", persistent.namespace, timeout=120)
    new = wait_for_new_ready_pod(persistent, old["metadata"]["uid"], timeout=180)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    assert claim(persistent)["spec"]["volumeName"] == volume_name  # the same volume, reattached
    wait_api_ready(api, timeout=120)

    after = api.get(eval_id)
    for field in ("status", "exit_code", "output", "verified", "job_name", "finished_at"):
        assert after.get(field) == before.get(field), (field, before, after)
    assert api.output(eval_id)["stdout"] == "kept 42\n"
    events_after = list(api.events(eval_id, timeout=60))
    assert summary(events_after) == summary(events_before)
    assert [e.data for e in events_after] == [e.data for e in events_before]

    # The dispatcher goes on with the restarted Redis: a new evaluation runs to its verdict.
    fresh = api.submit_ok(code="print('after the restart')")
    done = api.wait_verified(fresh["eval_id"], timeout=180)
    assert (done["status"], done["exit_code"]) == ("completed", 0), done
    assert done["output"] == "after the restart\n"
    assert [e.type for e in api.events(fresh["eval_id"], timeout=60)][-1] == "completed"
