"""What crucible refuses in a Job template and forces on the Job, its pod and every container.

Pure functions on dicts: the isolation and bounds an untrusted run needs, whatever the template
says. Refused (``errors.TemplateError``): host namespaces, hostPath volumes, projected
service-account tokens, hostPort, runAsUser 0, the names and paths crucible adds. Forced: one
pod and no retries, ``activeDeadlineSeconds`` = timeout + grace + margin, a TTL; no
service-account token nor service links; Pod Security "restricted" on every container,
crucible's own with a read-only root.
"""

import math
from typing import Any

from dispatcher import errors
from dispatcher.backends.kube import config as kube_config

# Containers and volumes named so are crucible's own (``instrument`` adds them); a template's
# may not be, so a name crucible adds later can never meet one an operator chose.
OWN_PREFIX = "crucible-"


def active_deadline_seconds(timeout_seconds: float, config: kube_config.KubernetesConfig) -> int:
    return math.ceil(timeout_seconds + config.grace_seconds + config.deadline_margin_seconds)


def check_template(pod: dict[str, Any], *, reserved_root: str) -> None:
    """Reject what crucible would silently break (its names, and the mount root ``instrument``
    passes), or what breaks "restricted" on purpose."""
    for flag in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if pod.get(flag):
            raise errors.TemplateError(f"the pod sets {flag}: not allowed for evaluations")
    for volume in pod.get("volumes") or []:
        name = volume.get("name", "")
        if name.startswith(OWN_PREFIX):
            raise errors.TemplateError(f"volume name {name!r}: the crucible- prefix is reserved")
        if "hostPath" in volume:
            raise errors.TemplateError(f"volume {name!r} is a hostPath: not allowed")
        sources = (volume.get("projected") or {}).get("sources") or []
        if any("serviceAccountToken" in s for s in sources):
            raise errors.TemplateError(f"volume {name!r} projects a service-account token")
    for container in pod["containers"] + list(pod.get("initContainers") or []):
        _check_container(container, reserved_root)


def _check_container(container: dict[str, Any], reserved_root: str) -> None:
    name = str(container.get("name", ""))
    if name.startswith(OWN_PREFIX):
        raise errors.TemplateError(f"container name {name!r}: the crucible- prefix is reserved")
    for mount in container.get("volumeMounts") or []:
        path = str(mount.get("mountPath", "")).rstrip("/")
        if path == reserved_root or path.startswith(reserved_root + "/"):
            raise errors.TemplateError(f"{name}: mountPath {path} is reserved for crucible")
    if any(p.get("hostPort") for p in container.get("ports") or []):
        raise errors.TemplateError(f"{name}: hostPort is not allowed")
    if (container.get("securityContext") or {}).get("runAsUser") == 0:
        raise errors.TemplateError(f"{name}: runAsUser 0 breaks Pod Security 'restricted'")


def bound_job(
    spec: dict[str, Any], timeout_seconds: float, config: kube_config.KubernetesConfig
) -> None:
    """One pod, never retried (untrusted code runs once), a deadline and a TTL."""
    for key in ("selector", "manualSelector", "suspend", "completionMode", "backoffLimitPerIndex"):
        spec.pop(key, None)
    spec["backoffLimit"] = 0
    spec["completions"] = 1
    spec["parallelism"] = 1
    spec["activeDeadlineSeconds"] = active_deadline_seconds(timeout_seconds, config)
    spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished


def harden_pod(pod: dict[str, Any], config: kube_config.KubernetesConfig) -> None:
    """No API credential, no restart, never root, the runtime's default seccomp profile."""
    pod["restartPolicy"] = "Never"
    pod["automountServiceAccountToken"] = False
    pod["enableServiceLinks"] = False  # no service addresses in the env of untrusted code
    pod["shareProcessNamespace"] = False  # the sidecar's password must stay out of reach
    pod["serviceAccountName"] = (
        config.service_account_name or pod.get("serviceAccountName") or "default"
    )
    pod.pop("serviceAccount", None)  # deprecated alias that could contradict the above
    pod.setdefault("terminationGracePeriodSeconds", config.termination_grace_period_seconds)
    security = pod.get("securityContext") or {}
    security["runAsNonRoot"] = True
    if security.get("runAsUser") == 0:
        raise errors.TemplateError("the pod sets runAsUser 0: breaks Pod Security 'restricted'")
    if config.run_as_user is not None and "runAsUser" not in security:
        security["runAsUser"] = config.run_as_user
        security.setdefault("runAsGroup", config.run_as_user)
        security.setdefault("fsGroup", config.run_as_user)
    security.setdefault("seccompProfile", {"type": "RuntimeDefault"})
    pod["securityContext"] = security


def restrict(container: dict[str, Any]) -> None:
    """Pod Security "restricted" for one container; crucible's own get a read-only root too."""
    security = container.get("securityContext") or {}
    security["allowPrivilegeEscalation"] = False
    security["privileged"] = False
    security["runAsNonRoot"] = True
    security["capabilities"] = {"drop": ["ALL"]}
    if (security.get("seccompProfile") or {}).get("type") != "Localhost":
        security["seccompProfile"] = {"type": "RuntimeDefault"}
    if str(container.get("name", "")).startswith(OWN_PREFIX):
        security["readOnlyRootFilesystem"] = True
    else:
        security.setdefault("readOnlyRootFilesystem", True)
    container["securityContext"] = security
