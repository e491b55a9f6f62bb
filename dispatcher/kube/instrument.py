"""Instrument a rendered Job: what crucible adds to whatever pod the template describes.

Pure functions on dicts. Added or forced, whatever the template says:
- volumes ``crucible-bin`` (the wrapper) and ``crucible-state`` (the wrapper's state files),
  both emptyDirs with a size limit, and the Redis password Secret, mounted in the sidecar only;
- init container ``crucible-wrapper-copy`` copying the wrapper from the platform image;
- the sidecar ``crucible-sidecar``: a native sidecar (init container, ``restartPolicy: Always``,
  a startup probe passing once ``state/sidecar.ready`` exists, so user code starts only once it
  watches), or in ``plain`` mode an ordinary container that exits after the terminal event;
- the main container's command becomes ``python /crucible/bin/crucible-wrapper --timeout T
  --grace G --state-dir /crucible/state -- <command> <args>``;
- labels and annotations, no service-account token, Pod Security "restricted" on every
  container, ``activeDeadlineSeconds`` = timeout + grace + margin, no retries, a TTL.
Template mistakes found here raise ``errors.TemplateError`` (the backend tries one render at
startup, so they stop the dispatcher instead of failing evaluations).
"""

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from dispatcher import errors
from dispatcher.kube import config as kube_config
from dispatcher.kube import names, templates

BIN_VOLUME = "crucible-bin"
STATE_VOLUME = "crucible-state"
PASSWORD_VOLUME = "crucible-redis-password"
RESERVED_VOLUMES = frozenset({BIN_VOLUME, STATE_VOLUME, PASSWORD_VOLUME})
MOUNT_ROOT = "/crucible"
BIN_DIR = "/crucible/bin"
STATE_DIR = "/crucible/state"
SECRET_DIR = "/crucible/secrets/redis"
WRAPPER_PATH = BIN_DIR + "/crucible-wrapper"
# wrapper/state.py SIDECAR_READY_FILE (the dispatcher may not import the wrapper package).
SIDECAR_READY = STATE_DIR + "/sidecar.ready"
INIT_CONTAINER = "crucible-wrapper-copy"
SIDECAR_CONTAINER = "crucible-sidecar"
SIDECAR_ENV = "CRUCIBLE_SIDECAR_"
ANNOTATION_VALUE_MAX = 4096

_COPY_WRAPPER = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
_READY_CHECK = "import os, sys; sys.exit(not os.path.exists(sys.argv[1]))"


@dataclasses.dataclass(frozen=True)
class Target:
    """The evaluation a Job is instrumented for."""

    eval_id: str
    job_name: str
    timeout_seconds: float
    labels: Mapping[str, str]
    created_at: str
    main_container: str


def label_problems(
    labels: Mapping[str, str], config: kube_config.KubernetesConfig
) -> dict[str, str]:
    """One message per user label that cannot be placed (the API's 422 details)."""
    found: dict[str, str] = {}
    for key, value in labels.items():
        field = f"labels.{key[:64]}"
        if not names.is_label_name(key):
            found[field] = "key must be 1-63 chars of [A-Za-z0-9-_.], alphanumeric at both ends"
        elif config.user_labels_as == "labels" and not names.is_label_value(value):
            found[field] = "value must be <= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends"
        elif len(value) > ANNOTATION_VALUE_MAX:
            found[field] = f"value must be <= {ANNOTATION_VALUE_MAX} chars"
    return found


def active_deadline_seconds(timeout_seconds: float, config: kube_config.KubernetesConfig) -> int:
    return math.ceil(timeout_seconds + config.grace_seconds + config.deadline_margin_seconds)


def instrument(
    job: dict[str, Any],
    target: Target,
    config: kube_config.KubernetesConfig,
    *,
    sidecar_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A new, instrumented Job; ``job`` is not modified. ``sidecar_env`` adds
    ``CRUCIBLE_SIDECAR_*`` settings (stream limits, log level) to the sidecar."""
    problems = label_problems(target.labels, config)
    if problems:
        raise errors.InvalidRequestError("invalid labels", details=problems)
    job = copy.deepcopy(job)
    _check_template(job)
    _set_metadata(job, target, config)
    _set_job_spec(job, target, config)
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    _set_pod_spec(pod, config)
    _add_volumes(pod, config)
    main = _find(pod["containers"], target.main_container)
    _wrap_main(main, target, config)
    password = PASSWORD_VOLUME in _vols(pod)
    sidecar = _sidecar(target, config, password=password, extra_env=sidecar_env or {})
    init = [_wrapper_copy(config), sidecar]
    if config.sidecar_mode == "plain":
        pod["containers"].append(init.pop())
    pod["initContainers"] = init + list(pod.get("initContainers") or [])
    for container in pod["containers"] + pod["initContainers"]:
        _restrict(container)
    return job


def _find(containers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for container in containers:
        if container.get("name") == name:
            return container
    raise errors.TemplateError(f"main container {name!r} not found")


def _vols(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v.get("name", ""): v for v in pod.get("volumes") or []}


def _check_template(job: dict[str, Any]) -> None:
    """Reject what crucible would silently break, or what breaks "restricted" on purpose."""
    pod = job["spec"]["template"]["spec"]
    for flag in ("hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace"):
        if pod.get(flag):
            raise errors.TemplateError(f"the pod sets {flag}: not allowed for evaluations")
    for name, volume in _vols(pod).items():
        if name in RESERVED_VOLUMES:
            raise errors.TemplateError(f"volume name {name!r} is reserved for crucible")
        if "hostPath" in volume:
            raise errors.TemplateError(f"volume {name!r} is a hostPath: not allowed")
        sources = (volume.get("projected") or {}).get("sources") or []
        if any("serviceAccountToken" in s for s in sources):
            raise errors.TemplateError(f"volume {name!r} projects a service-account token")
    for container in pod["containers"] + list(pod.get("initContainers") or []):
        _check_container(container)


def _check_container(container: dict[str, Any]) -> None:
    name = str(container.get("name", ""))
    if name.startswith("crucible-"):
        raise errors.TemplateError(f"container name {name!r}: the crucible- prefix is reserved")
    for mount in container.get("volumeMounts") or []:
        path = str(mount.get("mountPath", "")).rstrip("/")
        if path == MOUNT_ROOT or path.startswith(MOUNT_ROOT + "/"):
            raise errors.TemplateError(f"{name}: mountPath {path} is reserved for crucible")
    if any(p.get("hostPort") for p in container.get("ports") or []):
        raise errors.TemplateError(f"{name}: hostPort is not allowed")
    if (container.get("securityContext") or {}).get("runAsUser") == 0:
        raise errors.TemplateError(f"{name}: runAsUser 0 breaks Pod Security 'restricted'")


def _crucible_labels(target: Target, config: kube_config.KubernetesConfig) -> dict[str, str]:
    return {
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        names.LABEL_INSTANCE: config.instance,
        names.LABEL_EVAL_ID: names.eval_label(target.eval_id),
    }


def _set_metadata(
    job: dict[str, Any], target: Target, config: kube_config.KubernetesConfig
) -> None:
    user = {names.USER_PREFIX + k: v for k, v in target.labels.items()}
    ours = _crucible_labels(target, config)
    notes = {
        names.ANNOTATION_EVAL_ID: target.eval_id,
        names.ANNOTATION_CREATED_AT: target.created_at,
        names.ANNOTATION_TIMEOUT: _seconds_arg(target.timeout_seconds),
        names.ANNOTATION_MAIN_CONTAINER: target.main_container,
        names.ANNOTATION_SIDECAR_MODE: config.sidecar_mode,
    }
    pod_template = job["spec"]["template"]
    for meta in (job.setdefault("metadata", {}), pod_template.setdefault("metadata", {})):
        labels = meta.setdefault("labels", {}) or {}
        annotations = meta.setdefault("annotations", {}) or {}
        (labels if config.user_labels_as == "labels" else annotations).update(user)
        labels.update(ours)
        annotations.update(notes)
        meta["labels"], meta["annotations"] = labels, annotations
    pod_template["metadata"]["annotations"][names.ANNOTATION_DEFAULT_CONTAINER] = (
        target.main_container
    )
    job["metadata"]["name"] = target.job_name
    job["metadata"]["namespace"] = config.namespace
    job["metadata"].pop("generateName", None)


def _set_job_spec(
    job: dict[str, Any], target: Target, config: kube_config.KubernetesConfig
) -> None:
    spec = job["spec"]
    for key in ("selector", "manualSelector", "suspend", "completionMode", "backoffLimitPerIndex"):
        spec.pop(key, None)
    spec["backoffLimit"] = 0
    spec["completions"] = 1
    spec["parallelism"] = 1
    spec["activeDeadlineSeconds"] = active_deadline_seconds(target.timeout_seconds, config)
    spec["ttlSecondsAfterFinished"] = config.ttl_seconds_after_finished


def _set_pod_spec(pod: dict[str, Any], config: kube_config.KubernetesConfig) -> None:
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


def _add_volumes(pod: dict[str, Any], config: kube_config.KubernetesConfig) -> None:
    volumes = list(pod.get("volumes") or [])
    volumes.append({"name": BIN_VOLUME, "emptyDir": {"sizeLimit": config.bin_volume_size}})
    volumes.append({"name": STATE_VOLUME, "emptyDir": {"sizeLimit": config.state_volume_size}})
    if config.redis_password_secret:
        # Group-readable through fsGroup when there is one; otherwise world-readable, which is
        # still private: only the sidecar container mounts this volume.
        mode = 0o440 if "fsGroup" in pod["securityContext"] else 0o444
        volumes.append(
            {
                "name": PASSWORD_VOLUME,
                "secret": {
                    "secretName": config.redis_password_secret,
                    "items": [{"key": config.redis_password_secret_key, "path": "password"}],
                    "defaultMode": mode,
                },
            }
        )
    pod["volumes"] = volumes


def _seconds_arg(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(round(float(seconds), 3))


def _wrap_main(main: dict[str, Any], target: Target, config: kube_config.KubernetesConfig) -> None:
    original = list(main.get("command") or []) + list(main.get("args") or [])
    if not original:
        raise errors.TemplateError(f"main container {target.main_container!r} has no command")
    main["command"] = [
        config.wrapper_python,
        WRAPPER_PATH,
        "--timeout", _seconds_arg(target.timeout_seconds),
        "--grace", _seconds_arg(config.grace_seconds),
        "--state-dir", STATE_DIR,
        "--",
        *original,
    ]  # fmt: skip
    main.pop("args", None)
    mounts = list(main.get("volumeMounts") or [])
    mounts.append({"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": True})
    mounts.append({"name": STATE_VOLUME, "mountPath": STATE_DIR})
    main["volumeMounts"] = mounts


def _wrapper_copy(config: kube_config.KubernetesConfig) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER,
        "image": config.platform_image,
        "imagePullPolicy": config.platform_image_pull_policy,
        "command": [
            "python",
            "-I",
            "-S",
            "-c",
            _COPY_WRAPPER,
            config.wrapper_source_path,
            WRAPPER_PATH,
        ],
        "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
        "resources": config.init_resources.as_dict(),
    }


def _sidecar(
    target: Target,
    config: kube_config.KubernetesConfig,
    *,
    password: bool,
    extra_env: Mapping[str, str],
) -> dict[str, Any]:
    native = config.sidecar_mode == "native"
    env = {
        k.removeprefix(SIDECAR_ENV): v for k, v in extra_env.items() if k.startswith(SIDECAR_ENV)
    }
    env |= {
        "EVAL_ID": target.eval_id,
        "REDIS_URL": config.sidecar_redis_url,
        "STATE_DIR": STATE_DIR,
        "EXIT_AFTER_TERMINAL": "false" if native else "true",
    }
    mounts: list[dict[str, Any]] = [{"name": STATE_VOLUME, "mountPath": STATE_DIR}]
    if password:
        env["REDIS_PASSWORD_FILE"] = SECRET_DIR + "/password"
        mounts.append({"name": PASSWORD_VOLUME, "mountPath": SECRET_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": SIDECAR_CONTAINER,
        "image": config.platform_image,
        "imagePullPolicy": config.platform_image_pull_policy,
        "command": ["python", "-m", "sidecar"],
        # Env values go through the kubelet's $(VAR) expansion: keep them literal.
        "env": [
            {"name": SIDECAR_ENV + k, "value": templates.escape_expansion(v)}
            for k, v in env.items()
        ],
        "volumeMounts": mounts,
        "resources": config.sidecar_resources.as_dict(),
    }
    if native:
        period = config.sidecar_probe_period_seconds
        container["restartPolicy"] = "Always"
        container["startupProbe"] = {
            "exec": {
                "command": ["python", "-I", "-S", "-c", _READY_CHECK, SIDECAR_READY],
            },
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(config.sidecar_startup_timeout_seconds / period),
        }
    return container


def _restrict(container: dict[str, Any]) -> None:
    """Pod Security "restricted" for one container; crucible's own get a read-only root too."""
    security = container.get("securityContext") or {}
    security["allowPrivilegeEscalation"] = False
    security["privileged"] = False
    security["runAsNonRoot"] = True
    security["capabilities"] = {"drop": ["ALL"]}
    if (security.get("seccompProfile") or {}).get("type") != "Localhost":
        security["seccompProfile"] = {"type": "RuntimeDefault"}
    if str(container.get("name", "")).startswith("crucible-"):
        security["readOnlyRootFilesystem"] = True
    else:
        security.setdefault("readOnlyRootFilesystem", True)
    container["securityContext"] = security
