"""Instrument a rendered Job: what crucible adds to whatever pod the template describes.

Pure functions on dicts. Added or forced, whatever the template says:
- emptyDir volumes, each with a size limit: ``crucible-bin`` (the wrapper; read-only in the main
  container), ``crucible-run`` (the sidecar's channel socket; read-only in the main container,
  which can connect to the socket but not replace it) and ``crucible-spool`` (the sidecar's
  private copy of the output; mounted in the sidecar alone);
- init container ``crucible-wrapper-copy`` copying the wrapper from the platform image: the
  bundle (its own interpreter, libraries and loader; any executor image) or the zipapp;
- the sidecar ``crucible-sidecar``: a native sidecar (init container, ``restartPolicy: Always``;
  no startup probe: the wrapper waits for its socket and starts user code only once the sidecar
  holds the channel), or in ``plain`` mode an ordinary container that exits after the terminal
  event. It holds one credential: its evaluation's ingest token (``dispatcher.api.ingest``), in
  its own environment;
- the main container's command becomes ``/crucible/bin/crucible-launch --timeout T --grace G
  --channel /crucible/run/channel.sock -- <command> <args>`` (or ``python -I -S
  /crucible/bin/crucible-wrapper ...`` with the image's python; isolated either way: nothing in
  the environment or the image's site-packages runs in the wrapper);
- labels and annotations (``names``); with Kueue, its queue label on a Job created suspended;
- what ``hardening`` refuses and forces: no service-account token, Pod Security "restricted" on
  every container, ``activeDeadlineSeconds`` = timeout + grace + margin, no retries, a TTL.
Template mistakes found here raise ``errors.TemplateError`` (the backend tries one render at
startup, so they stop the dispatcher instead of failing evaluations).
"""

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from dispatcher import errors
from dispatcher.backends.kube import config as kube_config
from dispatcher.backends.kube.jobs import hardening, names, templates
from wire import channel, sidecar_env

BIN_VOLUME = "crucible-bin"
RUN_VOLUME = "crucible-run"
SPOOL_VOLUME = "crucible-spool"
MOUNT_ROOT = "/crucible"
BIN_DIR = "/crucible/bin"
RUN_DIR = channel.DEFAULT_RUN_DIR
SPOOL_DIR = "/crucible/spool"
WRAPPER_PATH = BIN_DIR + "/crucible-wrapper"
# The bundle's static launcher (wrapper/launch.c): starts the bundle's own interpreter.
LAUNCHER_PATH = BIN_DIR + "/crucible-launch"
SOCKET_PATH = channel.DEFAULT_SOCKET
# A ``code`` evaluation's program: fetched by the sidecar into the run volume, which the main
# container reads but cannot write (argv would take 128 KiB per argument; code may be 1 MiB).
PROGRAM_PATH = f"{RUN_DIR}/program.py"
RUN_VOLUME_SIZE = "1Mi"
INIT_CONTAINER = "crucible-wrapper-copy"
SIDECAR_CONTAINER = "crucible-sidecar"
# Kueue admits a suspended Job that carries this label through that LocalQueue.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

_COPY_WRAPPER = "import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])"
# Entry by entry: copytree of the whole would end by setting the mount point's times and mode,
# which only its owner (root) may.
_COPY_BUNDLE = (
    "import os, shutil, sys\n"
    "for e in os.scandir(sys.argv[1]):\n"
    "    target = os.path.join(sys.argv[2], e.name)\n"
    "    shutil.copytree(e.path, target) if e.is_dir() else shutil.copy2(e.path, target)"
)


@dataclasses.dataclass(frozen=True)
class Target:
    """The evaluation a Job is instrumented for."""

    eval_id: str
    job_name: str
    timeout_seconds: float
    labels: Mapping[str, str]
    created_at: str
    main_container: str
    # Where the sidecar puts the program of a ``code`` evaluation (the command reads it there).
    program_path: str | None = None


def instrument(
    job: dict[str, Any],
    target: Target,
    config: kube_config.KubernetesConfig,
    *,
    sidecar_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A new, instrumented Job; ``job`` is not modified. ``sidecar_env`` adds
    ``CRUCIBLE_SIDECAR_*`` settings (stream limits, log level) to the sidecar."""
    problems = names.label_problems(target.labels, config.user_labels_as)
    if problems:
        raise errors.InvalidRequestError("invalid labels", details=problems)
    job = copy.deepcopy(job)
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    hardening.check_template(pod, reserved_root=MOUNT_ROOT)
    _set_metadata(job, target, config)
    hardening.bound_job(job["spec"], target.timeout_seconds, config)
    _queue_in_kueue(job, config)
    hardening.harden_pod(pod, config)
    _add_volumes(pod, config)
    main = _find(pod["containers"], target.main_container)
    _wrap_main(main, target, config)
    sidecar = _sidecar(target, config, extra_env=sidecar_env or {})
    init = [_wrapper_copy(config), sidecar]
    if config.sidecar_mode == "plain":
        pod["containers"].append(init.pop())
    pod["initContainers"] = init + list(pod.get("initContainers") or [])
    for container in pod["containers"] + pod["initContainers"]:
        hardening.restrict(container)
    return job


def _find(containers: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for container in containers:
        if container.get("name") == name:
            return container
    raise errors.TemplateError(f"main container {name!r} not found")


def _set_metadata(
    job: dict[str, Any], target: Target, config: kube_config.KubernetesConfig
) -> None:
    user = {names.USER_PREFIX + k: v for k, v in target.labels.items()}
    ours = names.crucible_labels(target.eval_id, config.instance)
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


def _queue_in_kueue(job: dict[str, Any], config: kube_config.KubernetesConfig) -> None:
    if config.kueue_queue_name:
        # On the Job only: Kueue manages the Job, and its pod follows the Job.
        job["metadata"]["labels"][KUEUE_QUEUE_LABEL] = config.kueue_queue_name
        # Created suspended, Kueue unsuspends it once admitted; the deadline counts from then.
        job["spec"]["suspend"] = True


def _add_volumes(pod: dict[str, Any], config: kube_config.KubernetesConfig) -> None:
    volumes = list(pod.get("volumes") or [])
    volumes.append({"name": BIN_VOLUME, "emptyDir": {"sizeLimit": config.bin_volume_size}})
    volumes.append({"name": RUN_VOLUME, "emptyDir": {"sizeLimit": RUN_VOLUME_SIZE}})
    volumes.append({"name": SPOOL_VOLUME, "emptyDir": {"sizeLimit": config.spool_volume_size}})
    pod["volumes"] = volumes


def _seconds_arg(seconds: float) -> str:
    """Seconds to the millisecond; a fraction never rounds to 0, which the wrapper refuses."""
    value = float(seconds)
    if value.is_integer():
        return str(int(value))
    return repr(max(round(value, 3), 0.001))


def _wrap_main(main: dict[str, Any], target: Target, config: kube_config.KubernetesConfig) -> None:
    original = list(main.get("command") or []) + list(main.get("args") or [])
    if not original:
        raise errors.TemplateError(f"main container {target.main_container!r} has no command")
    if config.wrapper_runtime == "bundled":
        # The launcher runs the bundle's interpreter as ``-I -S`` too, with none of the
        # variables that steer the dynamic loader (wrapper/launch.c).
        runner = [LAUNCHER_PATH]
    else:
        # isolated: the user's PYTHON* variables and site-packages never reach the wrapper
        runner = [config.wrapper_python, "-I", "-S", WRAPPER_PATH]
    main["command"] = [
        *runner,
        "--timeout", _seconds_arg(target.timeout_seconds),
        "--grace", _seconds_arg(config.grace_seconds),
        "--channel", SOCKET_PATH,
        "--connect-timeout", str(config.sidecar_startup_timeout_seconds),
        "--",
        *original,
    ]  # fmt: skip
    main.pop("args", None)
    mounts = list(main.get("volumeMounts") or [])
    mounts.append({"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": True})
    mounts.append({"name": RUN_VOLUME, "mountPath": RUN_DIR, "readOnly": True})
    main["volumeMounts"] = mounts


def _wrapper_copy(config: kube_config.KubernetesConfig) -> dict[str, Any]:
    # Runs in the platform image: its python copies, whatever the executor image holds.
    if config.wrapper_runtime == "bundled":
        copy = [_COPY_BUNDLE, config.wrapper_bundle_path, BIN_DIR]
    else:
        copy = [_COPY_WRAPPER, config.wrapper_source_path, WRAPPER_PATH]
    return {
        "name": INIT_CONTAINER,
        "image": config.platform_image,
        "imagePullPolicy": config.platform_image_pull_policy,
        "command": ["python", "-I", "-S", "-c", *copy],
        "volumeMounts": [{"name": BIN_VOLUME, "mountPath": BIN_DIR}],
        "resources": config.init_resources.as_dict(),
    }


def _sidecar(
    target: Target,
    config: kube_config.KubernetesConfig,
    *,
    extra_env: Mapping[str, str],
) -> dict[str, Any]:
    native = config.sidecar_mode == "native"
    env = {k: v for k, v in extra_env.items() if k.startswith(sidecar_env.PREFIX)}
    env |= sidecar_env.channel_env(
        eval_id=target.eval_id,
        socket_path=SOCKET_PATH,
        spool_dir=SPOOL_DIR,
        exit_after_terminal=not native,
        code_file=target.program_path,
    )
    mounts: list[dict[str, Any]] = [
        {"name": RUN_VOLUME, "mountPath": RUN_DIR},
        {"name": SPOOL_VOLUME, "mountPath": SPOOL_DIR},
    ]
    container: dict[str, Any] = {
        "name": SIDECAR_CONTAINER,
        "image": config.platform_image,
        "imagePullPolicy": config.platform_image_pull_policy,
        "command": ["python", "-m", "sidecar"],
        # Env values go through the kubelet's $(VAR) expansion: keep them literal.
        "env": [{"name": k, "value": templates.escape_expansion(v)} for k, v in env.items()],
        "volumeMounts": mounts,
        "resources": config.sidecar_resources.as_dict(),
    }
    if native:
        # No startup probe: the wrapper itself waits for the socket (and holds user code until
        # the ACK), which is sooner than any probe period and costs no exec in the sidecar.
        container["restartPolicy"] = "Always"
    return container
