"""What the kubelet's record says happened to an evaluation: a pure function of Job and Pod.

``decide(job, pod, now=..., config=..., cancel_requested=...)`` takes the objects as the API
returns them (dicts in the API's JSON shape; ``job`` is None once the Job is gone) and returns
a ``Verdict`` (terminal, or ``pending`` with a reason) or None while nothing is to be said.

Reasons are only given where the kubelet knows more than the wrapper (OOMKilled, Evicted,
DeadlineExceeded, ...), or worded exactly as the sidecar words them ("timeout after 5s"): the
status store writes a correction wherever a verified verdict's reason differs.
"""

import dataclasses
import datetime
import math
from typing import Any

from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import instrument, names
from wire import events

EventType = events.EventType

# Waiting reasons that never clear by themselves within an evaluation's life.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",  # only restartable containers: the native sidecar failing to start
    }
)
UNSCHEDULABLE = "Unschedulable"
# A Job crucible created suspended (``kueue_queue_name``) that has no pod yet.
SUSPENDED = "Suspended: waiting for Kueue to admit the Job"
_SIGNAL_BASE = 128
_MAX_SIGNAL = 64


@dataclasses.dataclass(frozen=True)
class Verdict:
    type: EventType
    reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    duration_seconds: float | None = None
    delete_job: bool = False

    @property
    def terminal(self) -> bool:
        return self.type in events.TERMINAL_TYPES


def decide(
    job: dict[str, Any] | None,
    pod: dict[str, Any] | None,
    *,
    now: float,
    config: kube_config.KubernetesConfig,
    cancel_requested: bool = False,
) -> Verdict | None:
    main = _main_state(pod)
    terminated = (main or {}).get("state", {}).get("terminated")
    if cancel_requested and (job is None or terminated or _deleting(job, pod)):
        exit_code = terminated.get("exitCode") if terminated else None
        return Verdict(EventType.CANCELLED, "Cancelled", exit_code, _signal(exit_code))
    if terminated:
        return _from_termination(job, pod or {}, terminated)
    if job is None:
        return Verdict(EventType.ERROR, "JobDeleted: the Job was deleted before it finished")
    failed = _job_condition(job, "Failed")
    if failed is not None:
        return _from_job_failure(failed, pod)
    if _job_condition(job, "Complete") is not None:
        return Verdict(EventType.COMPLETED, exit_code=0)  # the pod is gone; the Job says exit 0
    if pod is None:
        # No pending grace here: Kueue holds a Job as long as its quota says, by design.
        return Verdict(EventType.PENDING, SUSPENDED) if _suspended(job) else None
    return _from_pod(pod, now, config)


def sidecar_lingers(
    pod: dict[str, Any], *, now: float | None = None, linger_seconds: float = 0.0
) -> bool:
    """True if a ``plain`` sidecar still runs although the main container ended (more than
    ``linger_seconds`` before ``now``, when given)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(names.ANNOTATION_SIDECAR_MODE) != "plain":
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    terminated = ((_main_state(pod) or {}).get("state") or {}).get("terminated")
    if not terminated:
        return False
    finished = parse_timestamp(terminated.get("finishedAt"))
    return now is None or finished is None or now - finished > linger_seconds


def awaits_sidecar(pod: dict[str, Any] | None, *, now: float, wait_seconds: float) -> bool:
    """True while the main container has ended but the sidecar still runs, for at most
    ``wait_seconds`` after the end: the sidecar is then publishing the last output and its
    terminal event, and a verdict published first would end SSE streams before that output."""
    terminated = ((_main_state(pod) or {}).get("state") or {}).get("terminated")
    if not terminated:
        return False
    finished = parse_timestamp(terminated.get("finishedAt"))
    if finished is not None and now - finished >= wait_seconds:
        return False
    statuses = _statuses(pod, "initContainerStatuses") + _statuses(pod, "containerStatuses")
    return any(
        status.get("name") == instrument.SIDECAR_CONTAINER
        and "running" in (status.get("state") or {})
        for status in statuses
    )


def _from_termination(
    job: dict[str, Any] | None, pod: dict[str, Any], terminated: dict[str, Any]
) -> Verdict:
    exit_code = int(terminated.get("exitCode", 0))
    duration = _seconds_between(terminated.get("startedAt"), terminated.get("finishedAt"))
    base = Verdict(EventType.FAILED, None, exit_code, _signal(exit_code), duration)
    deadline = _job_condition(job, "Failed") if job else None
    if deadline is not None and deadline.get("reason") == "DeadlineExceeded":
        return dataclasses.replace(base, type=EventType.TIMEOUT, reason="DeadlineExceeded")
    if terminated.get("reason") == "OOMKilled":
        return dataclasses.replace(base, reason="OOMKilled")
    disruption = _disruption(pod)
    if disruption and exit_code != 0:
        return dataclasses.replace(base, type=EventType.ERROR, reason=disruption)
    if exit_code == 0:
        return dataclasses.replace(base, type=EventType.COMPLETED)
    timeout = _annotation_seconds(pod, names.ANNOTATION_TIMEOUT)
    # The wrapper kills at its timeout; the kubelet's times are whole seconds, so a run that
    # lasted at least floor(timeout) and failed was, as far as the kubelet can tell, timed out.
    if timeout is not None and duration is not None and duration >= math.floor(timeout):
        return dataclasses.replace(
            base, type=EventType.TIMEOUT, reason=f"timeout after {timeout:g}s"
        )
    if terminated.get("reason") == "ContainerStatusUnknown":
        return dataclasses.replace(base, type=EventType.ERROR, reason="ContainerStatusUnknown")
    return base


def _from_job_failure(condition: dict[str, Any], pod: dict[str, Any] | None) -> Verdict:
    reason = str(condition.get("reason") or "JobFailed")
    stuck = _stuck_reason(pod) if pod else None
    if reason == "DeadlineExceeded":
        # Killed while still stuck before the user's code ever ran: that was no timeout.
        if stuck:
            return Verdict(EventType.ERROR, f"{stuck} until the Job's deadline")
        return Verdict(EventType.TIMEOUT, reason)
    disruption = _disruption(pod) if pod else None
    return Verdict(EventType.ERROR, disruption or _init_failure(pod) or stuck or reason)


def _from_pod(
    pod: dict[str, Any], now: float, config: kube_config.KubernetesConfig
) -> Verdict | None:
    disruption = _disruption(pod)
    if disruption:
        return Verdict(EventType.ERROR, disruption, delete_job=True)
    init_failure = _init_failure(pod)
    if init_failure:
        return Verdict(EventType.ERROR, init_failure, delete_job=True)
    stuck = _stuck_reason(pod)
    if stuck is None:
        return None
    since = _last_change(pod)
    if since is not None and now - since > config.pending_grace_seconds:
        waited = f"{config.pending_grace_seconds:g}s"
        return Verdict(EventType.ERROR, f"{stuck} (for more than {waited})", delete_job=True)
    return Verdict(EventType.PENDING, stuck)


def _last_change(pod: dict[str, Any]) -> float | None:
    """When the pod last moved on (created, scheduled, initialised): a main container's image
    is only pulled once the init containers are done, so its grace starts there."""
    times = [parse_timestamp(pod.get("metadata", {}).get("creationTimestamp"))]
    times += [parse_timestamp(c.get("lastTransitionTime")) for c in _statuses(pod, "conditions")]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _statuses(pod: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    return list(((pod or {}).get("status") or {}).get(key) or [])


def _main_state(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    if pod is None:
        return None
    annotations = pod.get("metadata", {}).get("annotations") or {}
    main = annotations.get(names.ANNOTATION_MAIN_CONTAINER)
    if main is None:
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        main = containers[0].get("name")
    for status in _statuses(pod, "containerStatuses"):
        if status.get("name") == main:
            return status
    return None


def _stuck_reason(pod: dict[str, Any] | None) -> str | None:
    """Why the pod cannot start: a container stuck waiting, or no node to run on."""
    for status in _statuses(pod, "initContainerStatuses") + _statuses(pod, "containerStatuses"):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            return str(waiting["reason"])
    for condition in _statuses(pod, "conditions"):
        scheduled = condition.get("type") == "PodScheduled" and condition.get("status") == "False"
        if scheduled and condition.get("reason") == UNSCHEDULABLE:
            return UNSCHEDULABLE
    return None


def _init_failure(pod: dict[str, Any] | None) -> str | None:
    """An init container (the wrapper copy) that failed: user code will never run. Sidecars
    (``restartPolicy: Always``) are restarted by the kubelet instead, so they do not count."""
    specs = ((pod or {}).get("spec") or {}).get("initContainers") or []
    restarted = {c.get("name") for c in specs if c.get("restartPolicy") == "Always"}
    for status in _statuses(pod, "initContainerStatuses"):
        if status.get("name") in restarted:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode", 0) != 0:
            return f"InitContainerFailed: {status.get('name')} exited {terminated['exitCode']}"
    return None


def _disruption(pod: dict[str, Any]) -> str | None:
    """Evicted, preempted, node lost: the pod was taken away, whatever the code did."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return "Evicted"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return str(condition.get("reason") or "DisruptionTarget")
    return None


def _suspended(job: dict[str, Any]) -> bool:
    return (job.get("spec") or {}).get("suspend") is True


def _deleting(job: dict[str, Any] | None, pod: dict[str, Any] | None) -> bool:
    return any((o or {}).get("metadata", {}).get("deletionTimestamp") for o in (job, pod))


def _job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _signal(exit_code: int | None) -> int | None:
    if exit_code is not None and _SIGNAL_BASE < exit_code <= _SIGNAL_BASE + _MAX_SIGNAL:
        return exit_code - _SIGNAL_BASE
    return None


def parse_timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _seconds_between(start: object, end: object) -> float | None:
    a, b = parse_timestamp(start), parse_timestamp(end)
    return None if a is None or b is None else max(0.0, b - a)


def _annotation_seconds(pod: dict[str, Any], key: str) -> float | None:
    value = (pod.get("metadata", {}).get("annotations") or {}).get(key)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
