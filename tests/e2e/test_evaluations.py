"""Evaluations through the installed chart: real Jobs, a real kubelet, real verdicts."""

from __future__ import annotations

import pykube  # type: ignore[import-untyped]
import pytest
from pytest_helm_charts.clusters import Cluster
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

from tests.e2e import kube
from tests.e2e.conftest import Release


def test_dispatcher_and_redis_run(release: Release, kube_cluster: Cluster) -> None:
    deployments = wait_for_deployments_to_run(
        kube_cluster.kube_client, [f"{release.name}-dispatcher"], release.namespace, 120
    )
    assert deployments[0].obj["status"]["readyReplicas"] >= 1
    ready = release.api.session.get(release.api.url("/readyz"), timeout=10)
    assert ready.status_code == 200, ready.text
    assert release.redis.ping()


def test_success_with_output(release: Release) -> None:
    record = release.api.submit_ok(code="print('hello from', 6 * 7)")
    assert record["status"] in ("accepted", "scheduled")
    done = release.api.wait_verified(record["eval_id"])
    assert done["status"] == "completed", done
    assert done["exit_code"] == 0
    assert "hello from 42" in done["output"]
    assert done["job_name"]
    assert release.api.output(record["eval_id"])["stdout"] == "hello from 42\n"


def test_a_mebibyte_of_code_runs_from_the_file_the_sidecar_fetched(release: Release) -> None:
    """argv takes 128 KiB per argument: the Job's command names a file in the run volume."""
    code = "import sys\n" + ("#" + "x" * 1023 + "\n") * 1020 + "print('ran', sys.argv[0])\n"
    assert len(code.encode()) > 1_040_000
    record = release.api.submit_ok(code=code)
    done = release.api.wait_verified(record["eval_id"])
    assert (done["status"], done["exit_code"]) == ("completed", 0), done
    assert done["output"] == "ran /crucible/run/program.py\n"
    main = release.job(done["job_name"])["spec"]["template"]["spec"]["containers"][0]
    assert len(" ".join(main["command"])) < 10_000  # the program is not in the manifest


def test_nonzero_exit(release: Release) -> None:
    code = "import sys\nprint('going down', file=sys.stderr)\nsys.exit(3)"
    record = release.api.submit_ok(code=code)
    done = release.api.wait_verified(record["eval_id"])
    assert done["status"] == "failed", done
    assert done["exit_code"] == 3
    assert "going down" in done["error"]


def test_timeout(release: Release) -> None:
    record = release.api.submit_ok(
        code="import time\nprint('sleeping', flush=True)\ntime.sleep(600)", timeout_seconds=3
    )
    done = release.api.wait_terminal(record["eval_id"], timeout=120)
    assert done["status"] == "timeout", done
    assert "sleeping" in (done["output"] or "")


def test_cancel_running_evaluation(release: Release) -> None:
    record = release.api.submit_ok(
        code="import time\nprint('started', flush=True)\ntime.sleep(600)"
    )
    eval_id = record["eval_id"]
    running = release.api.wait(eval_id, lambda r: r["status"] == "running", 120, "running")
    job_name = running["job_name"]
    response = release.api.cancel(eval_id)
    assert response.status_code == 202, response.text
    done = release.api.wait_terminal(eval_id, timeout=30)
    assert done["status"] == "cancelled", done
    # The Job is deleted, so nothing keeps running for a cancelled evaluation.
    deadline_check = kube.kubectl(
        "wait", "--for=delete", f"job/{job_name}", "-n", release.namespace, "--timeout=60s",
        check=False,
    )  # fmt: skip
    assert kube.kubectl("get", "job", job_name, "-n", release.namespace, check=False) == "", (
        deadline_check
    )


def test_oom_killed_verdict_comes_from_the_kubelet(release: Release) -> None:
    # Touch every page of 512 MiB under a 64 MiB limit: the kernel kills the process, which
    # may take the wrapper with it; the kubelet's record says why.
    code = "buf = bytearray(512 * 1024 * 1024)\nprint('survived', len(buf))"
    record = release.api.submit_ok(code=code, resources={"memory": "64Mi", "cpu": "500m"})
    done = release.api.wait_verified(record["eval_id"], timeout=180)
    assert done["status"] == "failed", done
    assert done["reason"] == "OOMKilled", done
    assert done["verified"] is True
    assert "survived" not in (done["output"] or "")
    pod = release.pod_of(done["job_name"]) if done["job_name"] else None
    if pod is not None:  # the verdict outlived the pod only if the TTL already removed it
        states = {s["name"]: s["state"] for s in pod["status"]["containerStatuses"]}
        main = states["evaluation"]
        assert main["terminated"]["reason"] == "OOMKilled", main


def test_missing_image_fails_with_the_pull_reason(release: Release) -> None:
    record = release.api.submit_ok(code="print('never runs')", image="missing")
    eval_id = record["eval_id"]
    # pendingGraceSeconds is 20 in tests/e2e/values.yaml; the verdict must come soon after.
    done = release.api.wait_terminal(eval_id, timeout=90)
    assert done["status"] == "error", done
    assert any(
        reason in (done["reason"] or "")
        for reason in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")
    ), done
    pending: list[tuple[str, dict[str, str]]] = release.redis.xrange(  # type: ignore[assignment]
        f"crucible:events:{eval_id}"
    )
    types = [fields.get("type") for _, fields in pending]
    assert "pending" in types or any('"pending"' in str(f) for _, f in pending), pending
    kube.kubectl(
        "wait", "--for=delete", f"job/{done['job_name']}", "-n", release.namespace,
        "--timeout=60s", check=False,
    )  # fmt: skip
    assert kube.kubectl("get", "job", done["job_name"], "-n", release.namespace, check=False) == ""


HOSTILE_BODIES = [
    pytest.param({"code": "print(1)", "memory": "1Gi"}, "memory", id="unknown-field"),
    pytest.param({"code": "print(1)", "resources": {"memory": "lots"}}, "resources", id="bad-qty"),
    pytest.param({"code": "print(1)", "resources": {"memory": "1Ei"}}, "resources", id="over-max"),
    pytest.param({"code": "print(1)", "timeout_seconds": -1}, "timeout_seconds", id="neg-time"),
    pytest.param({"code": "print(1)", "image": "docker.io/evil:latest"}, "image", id="image"),
    pytest.param({"code": "print(1)", "env": {"CRUCIBLE_X": "1"}}, "env", id="reserved-env"),
    pytest.param({"code": "x", "command": ["python"]}, "", id="code-and-command"),
    pytest.param({"code": "print(1)", "eval_id": "../../etc/passwd"}, "eval_id", id="eval-id"),
    pytest.param({"code": "print(1)", "labels": {"a": "x" * 500}}, "labels", id="label"),
]


@pytest.mark.parametrize(("body", "field"), HOSTILE_BODIES)
def test_hostile_input_is_rejected_without_a_job(
    release: Release, body: dict[str, object], field: str
) -> None:
    before = {job["metadata"]["name"] for job in release.jobs()}
    response = release.api.submit(**body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    if field:
        assert any(d["field"].startswith(field) for d in error["details"]), error
    assert {job["metadata"]["name"] for job in release.jobs()} == before


def test_yaml_in_user_strings_stays_a_string(release: Release) -> None:
    # Valid input full of YAML and template syntax: it must reach the process as text and
    # change nothing in the Job.
    payload = "x\n  hostPath: {path: /}\n${crucible.image} {{ .Values }} $(HOME) !!python/object"
    record = release.api.submit_ok(
        code=f"import os\nv = os.environ['PAYLOAD']\nprint(v)\nprint({payload!r} == v)",
        env={"PAYLOAD": payload},
    )
    done = release.api.wait_verified(record["eval_id"])
    assert done["status"] == "completed", done
    assert done["output"].rstrip().endswith("True"), done["output"]
    job = release.job(done["job_name"])
    pod_spec = job["spec"]["template"]["spec"]
    assert all("hostPath" not in volume for volume in pod_spec["volumes"])


def test_legacy_execute_endpoint(release: Release) -> None:
    response = release.api.session.post(
        release.api.url("/execute"),
        json={"eval_id": "legacy-e2e-1", "code": "print('legacy')", "timeout": 60},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    body = response.json()
    assert body["eval_id"] == "legacy-e2e-1"
    assert body["status"] == "created"
    assert body["job_name"]
    done = release.api.wait_verified("legacy-e2e-1")
    assert done["status"] == "completed"
    assert "legacy" in done["output"]


def test_jobs_complete_and_the_sidecar_exits(release: Release, kube_cluster: Cluster) -> None:
    record = release.api.submit_ok(code="print('short')")
    done = release.api.wait_verified(record["eval_id"])
    outcome, job = kube.wait_for_job(release.namespace, done["job_name"], timeout=120)
    assert outcome == "succeeded", job["status"]
    pod = pykube.Pod.objects(kube_cluster.kube_client, namespace=release.namespace).get(
        selector={"job-name": done["job_name"]}
    )
    statuses = pod.obj["status"]
    assert statuses["phase"] == "Succeeded"
    # Every container, the native sidecar included, has terminated: nothing holds the pod.
    for status in statuses.get("initContainerStatuses", []) + statuses["containerStatuses"]:
        assert "terminated" in status["state"], status
