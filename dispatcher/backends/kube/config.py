"""Settings group of the Kubernetes backend (owner: dispatcher/backends/kube/).

The dispatcher's settings class nests this as ``kubernetes``; with the dispatcher's prefix and
``__`` as nested delimiter an environment variable looks like
``CRUCIBLE_KUBERNETES__SIDECAR_MODE=plain``.
"""

from typing import Annotated, Literal, Self

import pydantic

# A Kubernetes resource quantity such as "100m", "1", "256Mi".
Quantity = Annotated[
    str, pydantic.StringConstraints(min_length=1, max_length=32, pattern=r"^[0-9.]+[A-Za-z]{0,2}$")
]
# Where a submission's labels go on its Job and Pod.
UserLabelsAs = Literal["labels", "annotations"]


class ContainerResources(pydantic.BaseModel):
    """Requests and limits of one of crucible's own containers (not the user's)."""

    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    cpu_request: Quantity = "10m"
    """CPU request; small, so crucible's containers do not eat into scheduling capacity."""

    memory_request: Quantity = "32Mi"
    """Memory request."""

    cpu_limit: Quantity = "1"
    """CPU limit; generous, because a throttled copy or publisher delays every evaluation."""

    memory_limit: Quantity = "128Mi"
    """Memory limit."""

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


class KubernetesConfig(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    namespace: str = "default"
    """Namespace the dispatcher creates evaluation Jobs in (normally its own)."""

    job_template_path: str = "/etc/crucible/job-template.yaml"
    """The operator-owned Job template (mounted from the chart's ConfigMap)."""

    kubeconfig_path: str | None = None
    """A kubeconfig file to use. Unset: in-cluster config when running in a pod, else the
    ``KUBECONFIG`` environment variable or ``~/.kube/config``."""

    kubeconfig_context: str | None = None
    """Context inside the kubeconfig; unset means its current context."""

    instance: str = pydantic.Field(
        default="crucible", max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
    )
    """Value of the ``crucible.dev/instance`` label (the Helm release name): the reconciler and
    the orphan sweep only touch Jobs of their own instance."""

    platform_image: str = "ghcr.io/crucible/crucible:0.1.0"
    """Image holding the sidecar and the wrapper file (used by the init and sidecar containers)."""

    platform_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """Pull policy of the platform image."""

    wrapper_source_path: str = "/opt/crucible/crucible-wrapper"
    """Where the wrapper zipapp lives inside the platform image."""

    wrapper_python: str = "python"
    """Interpreter that runs the wrapper zipapp inside the executor image (``image-python``
    runtime only; must be on the image's PATH)."""

    wrapper_runtime: Literal["bundled", "image-python"] = "bundled"
    """``bundled``: the wrapper runs on the interpreter, libraries and loader it brings along
    (wrapper/bundle.py), so executor images need neither Python nor a particular libc; it starts
    sooner (precompiled) and takes as much longer to copy (bench/wrapper_runtime.py).
    ``image-python``: the zipapp runs under the executor image's ``wrapper_python`` (3.8+)."""

    wrapper_bundle_path: str = "/opt/crucible/wrapper-bundle"
    """Where the wrapper bundle lives inside the platform image (``bundled`` runtime)."""

    main_container: str | None = None
    """Name of the container that runs the user's command; unset means the template's first."""

    sidecar_mode: Literal["native", "plain"] = "native"
    """``native``: the sidecar is an init container with ``restartPolicy: Always``, started
    before the main container (Kubernetes >= 1.29). ``plain``: an ordinary container that exits
    after the terminal event, for older clusters. Either way the wrapper starts user code only
    once the sidecar holds the channel."""

    sidecar_ingest_url: str = "http://crucible:8080"
    """The dispatcher's URL as evaluation pods reach it (the chart sets its Service's name).
    Sidecars hand their events there with a per-evaluation token; pods hold no Redis
    credential."""

    service_account_name: str | None = None
    """Service account of evaluation pods (the chart's token-less, right-less one). Unset keeps
    what the template says, else ``default``."""

    run_as_user: int | None = pydantic.Field(default=65532, ge=1)
    """Pod-level ``runAsUser``/``runAsGroup``/``fsGroup`` applied when the template sets none, so
    executor images whose USER is root still start under ``runAsNonRoot``. None: leave unset."""

    grace_seconds: float = pydantic.Field(default=5.0, ge=0, le=300)
    """Wrapper's grace between SIGTERM and SIGKILL once the evaluation's timeout is reached."""

    deadline_margin_seconds: int = pydantic.Field(default=60, ge=0, le=3600)
    """Added to timeout + grace for the Job's ``activeDeadlineSeconds`` (the backstop). The
    deadline counts from the Job's start, so this must cover scheduling and image pulls; raise
    it where executor images are large and not pre-pulled."""

    ttl_seconds_after_finished: int = pydantic.Field(default=300, ge=0)
    """Finished Jobs are removed by Kubernetes after this; the reconciler records the verdict
    long before."""

    termination_grace_period_seconds: int = pydantic.Field(default=10, ge=1, le=300)
    """Pod's grace on delete (cancel): time for the wrapper to forward SIGTERM and write exit."""

    bin_volume_size: Quantity = "32Mi"
    """``sizeLimit`` of the ``crucible-bin`` emptyDir holding the wrapper (the bundle is about
    17 MB)."""

    spool_volume_size: Quantity = "64Mi"
    """``sizeLimit`` of the sidecar's private ``crucible-spool`` emptyDir (its copy of the
    output, capped at 8 MiB per stream)."""

    init_resources: ContainerResources = ContainerResources()
    """Resources of the init container that copies the wrapper."""

    sidecar_resources: ContainerResources = ContainerResources(memory_limit="256Mi")
    """Resources of the sidecar."""

    plain_sidecar_linger_seconds: float = pydantic.Field(default=30.0, ge=0)
    """``plain`` mode: how long the sidecar may outlive the main container (it normally exits
    after publishing the end) before the reconciler deletes the Job to end the pod."""

    sidecar_startup_timeout_seconds: int = pydantic.Field(default=120, ge=5)
    """How long the wrapper waits for the sidecar's socket and ACK; past it, it exits 125 and
    runs nothing (the evaluation fails with the reason)."""

    user_labels_as: UserLabelsAs = "labels"
    """Where a submission's labels go, under the ``user.crucible.dev/`` prefix: as labels
    (selectable, values must be valid label values) or as annotations (any value)."""

    pending_grace_seconds: float = pydantic.Field(default=120.0, gt=0)
    """How long a pod may wait on an image pull or for a node before the evaluation becomes
    ``error`` and its Job is deleted; ``pending`` with the reason is published before that."""

    resync_interval_seconds: float = pydantic.Field(default=300.0, gt=0)
    """Relist Jobs and Pods this often even when the watches are healthy."""

    watch_timeout_seconds: int = pydantic.Field(default=120, ge=5)
    """Server-side timeout of one watch request; a new watch resumes from the last version."""

    sidecar_verdict_wait_seconds: float = pydantic.Field(default=10.0, ge=0)
    """How long the reconciler holds back its verdict after the main container ended while the
    sidecar still runs, so the sidecar's output and terminal event reach clients first."""

    tick_seconds: float = pydantic.Field(default=5.0, gt=0)
    """How often time-based decisions (pending grace) are re-evaluated without new events."""

    orphan_min_age_seconds: float = pydantic.Field(default=60.0, ge=0)
    """Jobs with crucible's labels but no evaluation record, older than this, are deleted."""

    cancel_tombstone_seconds: int = pydantic.Field(default=3600, ge=60)
    """How long a cancel is remembered, so a submission that raced it deletes its new Job."""

    max_running: int = pydantic.Field(default=100, ge=0)
    """Evaluations admitted (their Job created) and not yet ended, all tenants together; the
    rest wait ``queued``, admitted round robin over the tenants as these end. 0: no limit (every
    submission is admitted at once, still through the queue)."""

    max_queued: int = pydantic.Field(default=10_000, ge=0)
    """Evaluations waiting for admission; a submission past it gets 429 ``queue_full`` and
    nothing is created. 0: no limit."""

    kueue_queue_name: str | None = pydantic.Field(
        default=None, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    """A Kueue ``LocalQueue`` in ``namespace`` to hand admission to: Jobs are then created
    suspended with the ``kueue.x-k8s.io/queue-name`` label, and Kueue starts them when its
    quota allows (set ``max_running`` to 0 so that Kueue alone decides). Unset: no Kueue."""

    admission_tick_seconds: float = pydantic.Field(default=2.0, gt=0)
    """Each replica looks at the queue this often besides when an end or a submission wakes it;
    also the wait before a Job that could not be created is tried again."""

    api_threads: int = pydantic.Field(default=4, ge=1, le=64)
    """Threads for blocking Kubernetes API calls (the event loop never blocks on them)."""

    api_timeout_seconds: float = pydantic.Field(default=15.0, gt=0)
    """Timeout of one API request (not of watches)."""

    leader_lease_name: str | None = pydantic.Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
    )
    """The ``coordination.k8s.io`` Lease (in ``namespace``) whose holder runs the reconciler, so
    that of several replicas exactly one does; unset: ``<instance>-reconciler``."""

    leader_identity: str | None = pydantic.Field(default=None, min_length=1, max_length=253)
    """This replica's name in the Lease; unset: the ``POD_NAME`` environment variable (the chart
    sets it from the pod's name), else ``<hostname>-<pid>``."""

    leader_lease_duration_seconds: int = pydantic.Field(default=15, ge=2, le=3600)
    """How long others wait, from when they last saw the Lease change, before taking it over
    from a holder that stopped renewing (client-go's default)."""

    leader_renew_deadline_seconds: float = pydantic.Field(default=10.0, gt=0)
    """The leader stops leading when it has not renewed for this long; shorter than the lease
    duration, so it has stopped before anyone else may start."""

    leader_retry_seconds: float = pydantic.Field(default=2.0, gt=0)
    """Interval of renewals and of attempts to acquire the Lease."""

    @pydantic.model_validator(mode="after")
    def _leader_timing_is_ordered(self) -> Self:
        if not (
            self.leader_retry_seconds
            < self.leader_renew_deadline_seconds
            < self.leader_lease_duration_seconds
        ):
            raise ValueError(
                "leader timing needs retry_seconds < renew_deadline_seconds < "
                "lease_duration_seconds"
            )
        return self
