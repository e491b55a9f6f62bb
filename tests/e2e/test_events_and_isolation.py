"""Events over SSE and the legacy channels; what an evaluation pod can and cannot see."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from tests.e2e import kube
from tests.e2e.conftest import Release

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def collect_channels(release: Release, stop: threading.Event, into: list[dict[str, Any]]) -> None:
    pubsub = release.redis.pubsub()  # type: ignore[no-untyped-call]
    pubsub.psubscribe("evaluation:*")
    try:
        while not stop.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message and message["type"] == "pmessage":
                into.append({"channel": message["channel"], **json.loads(message["data"])})
    finally:
        pubsub.close()


def test_events_over_sse_and_legacy_channels(release: Release) -> None:
    heard: list[dict[str, Any]] = []
    stop = threading.Event()
    listener = threading.Thread(target=collect_channels, args=(release, stop, heard))
    listener.start()
    try:
        deadline = time.monotonic() + 10
        while release.redis.execute_command("PUBSUB", "NUMPAT") < 1:  # type: ignore[no-untyped-call]
            assert time.monotonic() < deadline, "listener never subscribed"
            time.sleep(0.05)
        code = (
            "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
        )
        record = release.api.submit_ok(code=code)
        eval_id = record["eval_id"]
        events = list(release.api.events(eval_id, timeout=120))
        release.api.wait_verified(eval_id)
        deadline = time.monotonic() + 30
        while not any(
            h["channel"] == "evaluation:completed" and h["eval_id"] == eval_id for h in heard
        ):
            assert time.monotonic() < deadline, heard
            time.sleep(0.1)
    finally:
        stop.set()
        listener.join()

    types = [e.type for e in events]
    assert types[0] == "accepted", types
    assert "running" in types, types
    assert "output" in types, types
    assert types[-1] == "completed", types
    seqs = [e.data["seq"] for e in events]
    assert seqs == sorted(set(seqs)), seqs
    assert all(e.data["eval_id"] == eval_id for e in events)
    assert all(e.id for e in events), "every SSE event carries its stream id"
    printed = "".join(e.data["data"] for e in events if e.type == "output")
    assert "tick 0\ntick 1\ntick 2\n" in printed

    mine = [h for h in heard if h.get("eval_id") == eval_id]
    channels = [h["channel"] for h in mine]
    assert "evaluation:running" in channels, channels
    assert channels.count("evaluation:completed") == 1, channels
    completed = next(h for h in mine if h["channel"] == "evaluation:completed")
    assert completed["exit_code"] == 0
    assert "tick 2" in completed["output"]
    assert {"eval_id", "exit_code", "output", "error", "duration_seconds", "timestamp"} <= set(
        completed
    )


def test_sse_resumes_from_last_event_id(release: Release) -> None:
    record = release.api.submit_ok(code="print('a')\nprint('b')")
    release.api.wait_verified(record["eval_id"])
    every = list(release.api.events(record["eval_id"]))
    assert len(every) >= 3
    resumed = release.api.session.get(
        release.api.url(f"/v1/evaluations/{record['eval_id']}/events"),
        headers={"Last-Event-ID": every[1].id},
        stream=True,
        timeout=60,
    )
    body = resumed.text
    assert f"id: {every[1].id}\n" not in body
    assert f"id: {every[2].id}\n" in body


def sidecar_secret_paths(pod_spec: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Names of volumes backed by Secrets, and the mount paths of those in the sidecar."""
    secret_volumes = {v["name"] for v in pod_spec.get("volumes", []) if "secret" in v}
    containers = pod_spec.get("initContainers", []) + pod_spec["containers"]
    paths = [
        m["mountPath"]
        for c in containers
        if c["name"] == "crucible-sidecar"
        for m in c.get("volumeMounts", [])
        if m["name"] in secret_volumes
    ]
    return secret_volumes, paths


def test_evaluation_pod_has_no_token_and_cannot_read_the_redis_password(release: Release) -> None:
    probe = release.api.submit_ok(code="print('probe')")
    done = release.api.wait_verified(probe["eval_id"])
    pod_spec = release.job(done["job_name"])["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    secret_volumes, sidecar_paths = sidecar_secret_paths(pod_spec)
    assert sidecar_paths, "the sidecar mounts its Redis password from a Secret"
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        if container["name"] != "crucible-sidecar":
            mounted = {m["name"] for m in container.get("volumeMounts", [])}
            assert not mounted & secret_volumes, container["name"]
        for env in container.get("env", []):
            assert "secretKeyRef" not in env.get("valueFrom", {}), (container["name"], env)

    # Now from inside: user code looks for a token, the sidecar's files and Redis credentials.
    snoop = f"""
import json, os
seen = {{"token": os.path.exists({TOKEN_PATH!r}), "readable": {{}},
        "env": sorted(k for k in os.environ if "REDIS" in k or "PASS" in k or "TOKEN" in k)}}
for path in {sidecar_paths!r}:
    for root, _, files in os.walk(path):
        for f in files:
            seen["readable"][os.path.join(root, f)] = True
    try:
        os.listdir(path)
        seen["readable"][path] = True
    except OSError as exc:
        seen["readable"][path] = type(exc).__name__
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            environ = open(f"/proc/{{pid}}/environ", "rb").read()
        except OSError:
            continue
        if b"REDIS" in environ and b"PASSWORD" in environ:
            seen["readable"][f"/proc/{{pid}}/environ"] = True
print(json.dumps(seen))
"""
    record = release.api.submit_ok(code=snoop)
    done = release.api.wait_verified(record["eval_id"])
    assert done["status"] == "completed", done
    seen = json.loads(done["output"].strip().splitlines()[-1])
    assert seen["token"] is False, seen
    assert seen["env"] == [], seen
    assert all(v is not True for v in seen["readable"].values()), seen


def test_no_jobs_leak(release: Release) -> None:
    """Runs last in this module: every Job left is finished; none is still active."""
    deadline = time.monotonic() + 120
    while True:
        active = [j["metadata"]["name"] for j in release.jobs() if kube.job_outcome(j) is None]
        if not active:
            break
        assert time.monotonic() < deadline, f"jobs still active: {active}"
        time.sleep(1)
    jobs = release.jobs()
    assert jobs, "completed evaluations keep their Jobs until the TTL; none were found"
    for job in jobs:
        assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "crucible"
        eval_id = job["metadata"]["annotations"].get("crucible.dev/eval-id")
        assert eval_id, job["metadata"]
        assert release.api.get(eval_id)["status"] in ("completed", "failed", "timeout")
