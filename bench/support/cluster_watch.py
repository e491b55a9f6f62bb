"""Watches and counters of the in-VM cluster that the cluster benchmarks read: when each Job
was first seen complete and its pod terminal, when each terminal event reached a plain
subscriber of the release's Redis, and the kubelet's runtime operations."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes

from tests.e2e import kube
from wire import keys


class FirstSeen:
    """Client-clock time at which each object of a namespace was first seen in some state (a
    watch delivers changes within milliseconds; the objects' own timestamps have seconds)."""

    def __init__(
        self,
        list_function: Callable[..., Any],
        namespace: str,
        key: Callable[[dict[str, Any]], str | None],
        reached: Callable[[dict[str, Any]], bool],
    ) -> None:
        self.list_function = list_function
        self.namespace = namespace
        self.key = key
        self.reached = reached
        self.first: dict[str, float] = {}
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            # Plain JSON, not the client's models: building those holds the GIL for
            # milliseconds per pod change, and the benchmark's SSE readers, whose clock stamps
            # each event's arrival, share this process (the keys read here are the same).
            for event in watch.stream(  # type: ignore[no-untyped-call]
                self.list_function, self.namespace, timeout_seconds=30, deserialize=False
            ):
                obj = event["object"]
                name = self.key(obj)
                if name is not None and name not in self.first and self.reached(obj):
                    with self.changed:
                        self.first[name] = time.time()
                        self.changed.notify_all()
                if self.stop.is_set():
                    watch.stop()  # type: ignore[no-untyped-call]

    def wait(self, name: str, timeout: float = 300) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: name in self.first, timeout=timeout):
                raise TimeoutError(f"{name} not seen in its state after {timeout}s")
            return self.first[name]


def job_watch(batch: kubernetes.client.BatchV1Api, namespace: str) -> FirstSeen:
    """When each Job was first seen complete."""

    def complete(job: dict[str, Any]) -> bool:
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(
            c["status"] == "True" and c["type"] in ("Complete", "SuccessCriteriaMet")
            for c in conditions
        )

    return FirstSeen(
        batch.list_namespaced_job, namespace, lambda job: job["metadata"]["name"], complete
    )


def pod_watch(core: kubernetes.client.CoreV1Api, namespace: str) -> FirstSeen:
    """When each Job's pod was first seen Succeeded or Failed (the kubelet's report), by Job."""

    def job_of(pod: dict[str, Any]) -> str | None:
        return (pod["metadata"].get("labels") or {}).get("job-name")

    def terminal(pod: dict[str, Any]) -> bool:
        return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")

    return FirstSeen(core.list_namespaced_pod, namespace, job_of, terminal)


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


class PubSubArrivals:
    """When each evaluation's terminal event reached a plain subscriber of the legacy pub/sub
    channels on the release's Redis (the same vantage point as ``bench/latency.py``'s), next to
    the SSE client: what the dispatcher's SSE path adds, and what comes before Redis."""

    def __init__(self, host: str, port: int, password: str) -> None:
        import redis

        # Kept: a client collected closes its pool, the subscription's connection with it.
        self._client = redis.Redis(host=host, port=port, username="dispatcher", password=password)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(keys.LEGACY_COMPLETED, keys.LEGACY_FAILED)
        self.first: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for message in self._pubsub.listen():
            if message and message.get("type") == "message":
                self.first.setdefault(json.loads(message["data"])["eval_id"], time.time())

    def wait(self, eval_id: str, timeout: float = 10.0) -> float:
        deadline = time.time() + timeout
        while eval_id not in self.first and time.time() < deadline:
            time.sleep(0.005)
        return self.first.get(eval_id, float("nan"))
