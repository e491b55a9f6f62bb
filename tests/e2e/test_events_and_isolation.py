"""Events over SSE and the legacy channels; no Job outlives its evaluation."""

from __future__ import annotations

import time

from tests.e2e import attacks, kube
from tests.e2e.conftest import Release


def test_events_over_sse_and_legacy_channels(release: Release) -> None:
    code = "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)"
    with attacks.legacy_listener(release) as heard:
        record = release.api.submit_ok(code=code)
        eval_id = record["eval_id"]
        events = list(release.api.events(eval_id, timeout=120))
        release.api.wait_verified(eval_id)
        attacks.wait_heard(heard, eval_id, "evaluation:completed")

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
