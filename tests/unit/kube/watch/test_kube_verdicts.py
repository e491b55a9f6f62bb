"""Verdicts over realistic Job and Pod status shapes (as the API returns them, camelCase)."""

import datetime
from typing import Any

import pytest

from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.watch import verdicts
from wire.events import EventType

CONFIG = kube_config.KubernetesConfig(pending_grace_seconds=120)
T0 = "2026-01-01T00:00:00Z"
NOW = datetime.datetime(2026, 1, 1, 0, 0, 30, tzinfo=datetime.UTC).timestamp()  # 30 s later
LATER = NOW + 600


def job(*conditions: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "crucible-e-0123456789",
        "namespace": "evals",
        "creationTimestamp": T0,
        "annotations": {"crucible.dev/eval-id": "e"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:20Z"
    status: dict[str, Any] = {"startTime": T0}
    if conditions:
        status["conditions"] = list(conditions)
    else:
        status.update(active=1, ready=0, uncountedTerminatedPods={})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "status": status}


def job_condition(kind: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": "2026-01-01T00:00:40Z", "lastTransitionTime": "2026-01-01T00:00:40Z",
    }  # fmt: skip


DEADLINE = job_condition(
    "Failed", "DeadlineExceeded", "Job was active longer than specified deadline"
)
BACKOFF = job_condition(
    "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
)
COMPLETE = job_condition(
    "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
)


def terminated(
    exit_code: int, reason: str, started: str = T0, finished: str = ""
) -> dict[str, Any]:
    return {
        "terminated": {
            "containerID": "containerd://4f1c0e",
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": finished or "2026-01-01T00:00:02Z",
        }
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


RUNNING = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
INIT_DONE = [
    {"name": "crucible-wrapper-copy", "state": terminated(0, "Completed"), "ready": True,
     "restartCount": 0, "image": "registry.example/crucible:1", "imageID": "sha256:aa"},
    {"name": "crucible-sidecar", "state": RUNNING, "ready": True, "started": True,
     "restartCount": 0, "image": "registry.example/crucible:1", "imageID": "sha256:aa"},
]  # fmt: skip


def pod(
    main_state: dict[str, Any] | None = None,
    *,
    phase: str = "Running",
    init: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    timeout: str = "30",
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions or [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": INIT_DONE if init is None else init,
        "qosClass": "Burstable",
        "startTime": T0,
    }
    if main_state is not None:
        status["containerStatuses"] = [
            {"name": "evaluation", "state": main_state, "lastState": {}, "ready": False,
             "restartCount": 0, "image": "docker.io/library/python:3.12-slim", "imageID": "",
             "started": "running" in main_state},
        ]  # fmt: skip
    if reason:
        status["reason"] = reason
        status["message"] = "The node was low on resource: memory."
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "crucible-e-0123456789-x7k2p",
            "creationTimestamp": T0,
            "annotations": {
                "crucible.dev/eval-id": "e",
                "crucible.dev/main-container": "evaluation",
                "crucible.dev/timeout-seconds": timeout,
            },
        },
        "spec": {"containers": [{"name": "evaluation"}]},
        "status": status,
    }


UNSCHEDULABLE = [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
     "message": "0/1 nodes are available: 1 Insufficient memory.", "lastProbeTime": None,
     "lastTransitionTime": T0},
]  # fmt: skip
DISRUPTED = [
    {"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
     "message": "Preempted in order to admit critical pod", "lastTransitionTime": T0},
]  # fmt: skip
EVICTED = [
    {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
     "message": "The node was low on resource: memory.", "lastTransitionTime": T0},
]  # fmt: skip
V = verdicts.Verdict
E = EventType

CASES: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None, float, bool, V | None]] = [
    ("running", job(), pod(RUNNING), NOW, False, None),
    ("initialising", job(), pod(waiting("PodInitializing")), NOW, False, None),
    ("no pod yet", job(), None, NOW, False, None),
    ("exit 0", job(COMPLETE), pod(terminated(0, "Completed"), phase="Succeeded"), NOW, False,
     V(E.COMPLETED, None, 0, None, 2.0)),
    ("exit 3", job(), pod(terminated(3, "Error"), phase="Failed"), NOW, False,
     V(E.FAILED, None, 3, None, 2.0)),
    ("OOM", job(BACKOFF), pod(terminated(137, "OOMKilled"), phase="Failed"), NOW, False,
     V(E.FAILED, "OOMKilled", 137, 9, 2.0)),
    ("deadline, killed", job(DEADLINE), pod(terminated(137, "Error"), phase="Failed"), NOW, False,
     V(E.TIMEOUT, "DeadlineExceeded", 137, 9, 2.0)),
    ("deadline, pod gone", job(DEADLINE), None, NOW, False, V(E.TIMEOUT, "DeadlineExceeded")),
    ("wrapper timeout", job(),
     pod(terminated(143, "Error", finished="2026-01-01T00:00:30Z"), phase="Failed"), NOW, False,
     V(E.TIMEOUT, "timeout after 30s", 143, 15, 30.0)),
    ("failed just before the timeout", job(),
     pod(terminated(1, "Error", finished="2026-01-01T00:00:28Z"), phase="Failed"), NOW, False,
     V(E.FAILED, None, 1, None, 28.0)),
    ("evicted", job(BACKOFF),
     pod(terminated(137, "Error"), phase="Failed", reason="Evicted", conditions=EVICTED), NOW,
     False, V(E.ERROR, "Evicted", 137, 9, 2.0)),
    ("evicted after success", job(COMPLETE),
     pod(terminated(0, "Completed"), phase="Failed", reason="Evicted"), NOW, False,
     V(E.COMPLETED, None, 0, None, 2.0)),
    ("preempted while running", job(), pod(RUNNING, conditions=DISRUPTED), NOW, False,
     V(E.ERROR, "PreemptionByScheduler", delete_job=True)),
    ("node lost", job(), pod(terminated(137, "ContainerStatusUnknown"), phase="Failed"), NOW,
     False, V(E.ERROR, "ContainerStatusUnknown", 137, 9, 2.0)),
    ("image pull backoff, young", job(),
     pod(waiting("ImagePullBackOff", 'Back-off pulling image "nope:1"'), phase="Pending"), NOW,
     False, V(E.PENDING, "ImagePullBackOff")),
    ("image pull backoff, too long", job(),
     pod(waiting("ImagePullBackOff", 'Back-off pulling image "nope:1"'), phase="Pending"), LATER,
     False, V(E.ERROR, "ImagePullBackOff (for more than 120s)", delete_job=True)),
    ("deadline while the image would not pull", job(DEADLINE),
     pod(waiting("ImagePullBackOff"), phase="Failed"), NOW, False,
     V(E.ERROR, "ImagePullBackOff until the Job's deadline")),
    ("sidecar never starts", job(),
     pod(None, phase="Pending", init=[INIT_DONE[0], {"name": "crucible-sidecar",
         "state": waiting("CrashLoopBackOff"), "ready": False, "restartCount": 4}]), LATER,
     False, V(E.ERROR, "CrashLoopBackOff (for more than 120s)", delete_job=True)),
    ("bad image name", job(), pod(waiting("InvalidImageName"), phase="Pending"), NOW, False,
     V(E.PENDING, "InvalidImageName")),
    ("platform image pull fails", job(),
     pod(None, phase="Pending", init=[{"name": "crucible-wrapper-copy",
         "state": waiting("ErrImagePull"), "ready": False, "restartCount": 0}]),
     NOW, False, V(E.PENDING, "ErrImagePull")),
    ("password secret missing", job(), pod(waiting("CreateContainerConfigError")), LATER, False,
     V(E.ERROR, "CreateContainerConfigError (for more than 120s)", delete_job=True)),
    ("unschedulable, young", job(), pod(None, phase="Pending", init=[], conditions=UNSCHEDULABLE),
     NOW, False, V(E.PENDING, "Unschedulable")),
    ("unschedulable, too long", job(),
     pod(None, phase="Pending", init=[], conditions=UNSCHEDULABLE), LATER, False,
     V(E.ERROR, "Unschedulable (for more than 120s)", delete_job=True)),
    ("wrapper copy failed", job(),
     pod(None, phase="Failed", init=[{"name": "crucible-wrapper-copy",
         "state": terminated(1, "Error"), "ready": False, "restartCount": 0}]), NOW, False,
     V(E.ERROR, "InitContainerFailed: crucible-wrapper-copy exited 1", delete_job=True)),
    ("job failed after wrapper copy failed", job(BACKOFF),
     pod(None, phase="Failed", init=[{"name": "crucible-wrapper-copy",
         "state": terminated(2, "Error"), "ready": False, "restartCount": 0}]), NOW, False,
     V(E.ERROR, "InitContainerFailed: crucible-wrapper-copy exited 2")),
    ("job complete, pod gone", job(COMPLETE), None, NOW, False, V(E.COMPLETED, exit_code=0)),
    ("job deleted by someone", None, pod(RUNNING), NOW, False,
     V(E.ERROR, "JobDeleted: the Job was deleted before it finished")),
    ("job deleted after a cancel", None, None, NOW, True, V(E.CANCELLED, "Cancelled")),
    ("cancelled, main got SIGTERM", job(deleting=True), pod(terminated(143, "Error")), NOW, True,
     V(E.CANCELLED, "Cancelled", 143, 15)),
    ("cancel requested, Job still deleting", job(deleting=True), pod(RUNNING), NOW, True,
     V(E.CANCELLED, "Cancelled")),
    ("cancel requested, nothing happened yet", job(), pod(RUNNING), NOW, True, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("job_obj", "pod_obj", "now", "cancel", "want"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdict(
    job_obj: dict[str, Any] | None,
    pod_obj: dict[str, Any] | None,
    now: float,
    cancel: bool,
    want: verdicts.Verdict | None,
) -> None:
    got = verdicts.decide(job_obj, pod_obj, now=now, config=CONFIG, cancel_requested=cancel)
    assert got == want


def test_grace_is_configurable() -> None:
    stuck = pod(waiting("ErrImagePull"), phase="Pending")
    patient = CONFIG.model_copy(update={"pending_grace_seconds": 3600.0})
    assert verdicts.decide(job(), stuck, now=LATER, config=patient) == V(E.PENDING, "ErrImagePull")


def test_main_container_is_found_by_annotation_not_position() -> None:
    p = pod(RUNNING)
    p["status"]["containerStatuses"].insert(
        0, {"name": "helper", "state": terminated(0, "Completed"), "ready": False}
    )
    assert verdicts.decide(job(), p, now=NOW, config=CONFIG) is None


def test_terminal_property_follows_the_event_type() -> None:
    assert V(E.FAILED).terminal
    assert not V(E.PENDING).terminal


def test_a_plain_sidecar_lingers_once_the_main_container_ended() -> None:
    ended = pod(terminated(137, "OOMKilled"))  # phase Running: the sidecar is still up
    assert not verdicts.sidecar_lingers(ended)  # native mode: the kubelet stops the sidecar
    ended["metadata"]["annotations"]["crucible.dev/sidecar-mode"] = "plain"
    assert verdicts.sidecar_lingers(ended)
    assert not verdicts.sidecar_lingers(ended, now=NOW, linger_seconds=60)
    assert verdicts.sidecar_lingers(ended, now=LATER, linger_seconds=60)
    ended["status"]["phase"] = "Failed"
    assert not verdicts.sidecar_lingers(ended)
    assert not verdicts.sidecar_lingers(pod(RUNNING))


def test_pending_grace_counts_from_the_pods_last_transition_not_its_creation() -> None:
    # The image is pulled only after slow init containers: 10 minutes after creation.
    initialised = datetime.datetime.fromtimestamp(LATER - 30, datetime.UTC)
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0},
        {"type": "Initialized", "status": "True",
         "lastTransitionTime": initialised.strftime("%Y-%m-%dT%H:%M:%SZ")},
    ]  # fmt: skip
    stuck = pod(waiting("ErrImagePull"), phase="Pending", conditions=conditions)
    assert verdicts.decide(job(), stuck, now=LATER, config=CONFIG) == V(E.PENDING, "ErrImagePull")
    verdict = verdicts.decide(job(), stuck, now=LATER + 120, config=CONFIG)
    assert verdict is not None
    assert verdict.type == E.ERROR


SIDECAR_DONE = [
    INIT_DONE[0],
    {**INIT_DONE[1], "state": terminated(0, "Completed"), "ready": False},
]
JUST_ENDED = datetime.datetime(2026, 1, 1, 0, 0, 5, tzinfo=datetime.UTC).timestamp()  # 3 s after


@pytest.mark.parametrize(
    ("case", "the_pod", "now", "expected"),
    [
        ("main ended 3 s ago, sidecar still running", pod(terminated(0, "Completed")),
         JUST_ENDED, True),
        ("main ended past the wait", pod(terminated(0, "Completed")), NOW, False),
        ("sidecar already ended", pod(terminated(0, "Completed"), init=SIDECAR_DONE),
         JUST_ENDED, False),
        ("main still running", pod(RUNNING), JUST_ENDED, False),
        ("no pod", None, JUST_ENDED, False),
    ],
)  # fmt: skip
def test_verdict_waits_for_a_running_sidecar_only_briefly(
    case: str, the_pod: dict[str, Any] | None, now: float, expected: bool
) -> None:
    assert verdicts.awaits_sidecar(the_pod, now=now, wait_seconds=10) is expected, case
