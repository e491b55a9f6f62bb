"""Admission on a real cluster: past `maxRunning` evaluations wait `queued` with a position and
start as others end; a queued one can be cancelled and never gets a Job. And a Redis restart
without persistence loses no running evaluation: the reconciler rebuilds their records from
their Jobs, and the sidecars' retries carry their ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.e2e import kube
from tests.e2e.api import TERMINAL
from tests.e2e.conftest import VALUES, Release, installed
from wire import keys

ADMISSION_VALUES = kube.REPO / "tests" / "e2e" / "admission-values.yaml"
MAX_RUNNING = 2


@pytest.fixture(scope="module")
def admission_release(cluster_available: None) -> Iterator[Release]:
    with installed(VALUES, ADMISSION_VALUES) as release:
        yield release


class RunningCounter:
    """The most evaluations seen admitted at once, and in a status that runs (scheduled,
    pending, running) at once, sampled in the release's Redis. A Job outlives its evaluation's
    end by the pod's shutdown, so Jobs are not what the limit counts."""

    def __init__(self, release: Release) -> None:
        self.redis = release.redis
        self.admitted = self.running = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(keys.ADMITTED)
            for status in ("scheduled", "pending", "running"):
                pipe.zcard(keys.STANDALONE.status_index(0, status))
            admitted, *running = pipe.execute()
            self.admitted = max(self.admitted, int(admitted))
            self.running = max(self.running, sum(int(n) for n in running))


def sleeper(seconds: int, word: str) -> str:
    return f"import time; time.sleep({seconds}); print('{word}')"


def test_past_the_limit_evaluations_queue_start_in_turn_and_a_queued_one_cancels(
    admission_release: Release,
) -> None:
    api = admission_release.api
    counter = RunningCounter(admission_release)
    try:
        ids = [api.submit_ok(code=sleeper(6, f"w{i}"))["eval_id"] for i in range(5)]
        waiting = [api.get(eval_id) for eval_id in ids[MAX_RUNNING:]]
        assert all(r["status"] == "queued" for r in waiting), waiting
        assert sorted(r["queue_position"] for r in waiting) == [1, 2, 3], waiting
        cancelled = api.cancel(ids[-1])
        assert cancelled.status_code == 202
        finished = [api.wait_verified(eval_id, timeout=240) for eval_id in ids[:-1]]
    finally:
        counter.stop.set()
        counter.thread.join()
    for i, record in enumerate(finished):
        assert (record["status"], record["exit_code"]) == ("completed", 0), record
        assert api.output(record["eval_id"])["stdout"] == f"w{i}\n"
    assert api.wait_terminal(ids[-1])["status"] == "cancelled"
    names = {job["metadata"]["name"] for job in admission_release.jobs()}
    assert api.get(ids[-1])["job_name"] not in names  # queued, cancelled: never a Job
    assert counter.admitted == MAX_RUNNING
    assert 0 < counter.running <= MAX_RUNNING, counter.running
    # Started in order: a queued evaluation's Job was created after an earlier one ended.
    first_end = min(r["finished_at"] for r in finished[:MAX_RUNNING])
    assert finished[MAX_RUNNING]["scheduled_at"] >= first_end - 1.0


def test_a_redis_restart_without_persistence_loses_no_running_evaluation(
    admission_release: Release,
) -> None:
    api, namespace = admission_release.api, admission_release.namespace
    code = (
        "import time\nfor i in range(20):\n    print(i, flush=True); time.sleep(1)\n"
        "raise SystemExit(3)"
    )
    ids = [api.submit_ok(code=code)["eval_id"] for _ in range(MAX_RUNNING)]
    for eval_id in ids:
        api.wait(eval_id, lambda r: r["status"] == "running", 120, "running")
    redis_pod = f"{admission_release.name}-redis-0"
    kube.kubectl("delete", "pod", redis_pod, "-n", namespace, "--wait=true", timeout=120)
    kube.kubectl(
        "wait", "--for=condition=Ready", f"pod/{redis_pod}", "-n", namespace, "--timeout=120s",
        timeout=150,
    )  # fmt: skip
    restarted = time.time()
    for eval_id in ids:
        rebuilt_within(admission_release, eval_id, seconds=60)
        try:
            # The kubelet's verdict may come first; the sidecar's end, held back by its
            # retries while Redis was away, brings the output after it.
            record = api.wait(
                eval_id,
                lambda r: r["status"] in TERMINAL and r["verified"] and bool(r["output"]),
                timeout=180,
                what="verified with its output",
            )
            assert (record["status"], record["exit_code"]) == ("failed", 3), record
            assert "19" in (record["output"] or ""), record  # printed after the restart
            assert record["finished_at"] > restarted
        except AssertionError as e:
            sidecar = kube.kubectl(
                "logs", "-n", namespace, "-l", f"job-name={api.get(eval_id)['job_name']}",
                "-c", "crucible-sidecar", "--tail=60", check=False,
            )  # fmt: skip
            raise AssertionError(
                f"{e}\n{dispatcher_logs(admission_release)}\nsidecar:\n{sidecar}"
            ) from None
    # The admission limit held for the rebuilt ones: a new evaluation still runs.
    after = api.submit_ok(code="print('after')")
    assert api.wait_verified(after["eval_id"], timeout=120)["status"] == "completed"


def rebuilt_within(release: Release, eval_id: str, seconds: float) -> None:
    """Until the reconciler rebuilds it (its next tick), a lost record answers 404, and while a
    replica's pooled connection to the old Redis pod is found dead, 503: wait for a 200."""
    deadline = time.monotonic() + seconds
    seen: list[int] = []
    while (
        status := release.api.session.get(
            release.api.url(f"/v1/evaluations/{eval_id}"), timeout=30
        ).status_code
    ) != 200:
        seen.append(status)
        if time.monotonic() > deadline:
            logs = dispatcher_logs(release)
            raise AssertionError(
                f"{eval_id} not rebuilt after {seconds}s (answers {sorted(set(seen))}):\n{logs}"
            )
        time.sleep(0.5)


def dispatcher_logs(release: Release) -> str:
    """The dispatchers' recent log lines but the access log's (requests drown what went wrong)."""
    text = kube.kubectl(
        "logs", "-n", release.namespace, "-l", "app.kubernetes.io/component=dispatcher",
        "--tail=2000", "--prefix", check=False,
    )  # fmt: skip
    return "\n".join(line for line in text.splitlines() if "aiohttp.access" not in line)
