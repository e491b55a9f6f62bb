"""What crucible refuses in a template and forces on every Job, pod and container."""

import copy
from typing import Any

import pytest

from dispatcher import errors
from dispatcher.backends.kube.jobs import instrument, templates
from tests.unit.kube import kube_samples
from tests.unit.kube.jobs.instrumented import (
    CONFIG,
    TEMPLATE,
    by_name,
    every_container,
    job,
    pod_of,
    target,
)


@pytest.mark.parametrize("mode", ["native", "plain"])
def test_every_container_meets_pod_security_restricted(mode: str) -> None:
    manifest = job(CONFIG.model_copy(update={"sidecar_mode": mode}))
    pod = pod_of(manifest)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert len(every_container(manifest)) == 3
    for container in every_container(manifest):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["privileged"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert security["readOnlyRootFilesystem"] is True


def test_template_capabilities_and_privilege_are_overridden() -> None:
    rendered = TEMPLATE.render(kube_samples.values())
    main = templates.containers(rendered)[0]
    main["securityContext"] = {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    manifest = instrument.instrument(rendered, target(), CONFIG)
    security = by_name(manifest, "evaluation")["securityContext"]
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_no_service_account_token_and_the_configured_account() -> None:
    pod = pod_of(job())
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "crucible-evaluation"
    assert pod["enableServiceLinks"] is False
    assert pod["shareProcessNamespace"] is False
    assert pod["restartPolicy"] == "Never"


@pytest.mark.parametrize(("timeout", "grace", "margin", "want"), [(30, 5, 30, 65), (0.5, 0, 0, 1)])
def test_active_deadline_is_timeout_plus_grace_plus_margin(
    timeout: float, grace: float, margin: int, want: int
) -> None:
    config = CONFIG.model_copy(update={"grace_seconds": grace, "deadline_margin_seconds": margin})
    spec = job(config, timeout_seconds=timeout)["spec"]
    assert spec["activeDeadlineSeconds"] == want
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == CONFIG.ttl_seconds_after_finished


def test_where_the_template_places_its_pods_is_kept() -> None:
    """Evaluations on nodes of their own (docs/kubernetes.md): the template's placement reaches
    the Job as written."""
    rendered = TEMPLATE.render(kube_samples.values())
    placement = {
        "nodeSelector": {"crucible.dev/evaluations": "true"},
        "tolerations": [
            {"key": "crucible.dev/evaluations", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {
                            "matchExpressions": [
                                {
                                    "key": "app.kubernetes.io/component",
                                    "operator": "In",
                                    "values": ["dispatcher", "redis"],
                                }
                            ]
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        },
        "priorityClassName": "evaluations",
    }
    rendered["spec"]["template"]["spec"].update(copy.deepcopy(placement))
    pod = pod_of(instrument.instrument(rendered, target(), CONFIG))
    assert {key: pod.get(key) for key in placement} == placement


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
        (lambda pod: pod["volumes"].append({"name": "crucible-run", "emptyDir": {}}), "prefix"),
        (lambda pod: pod["volumes"].append({"name": "crucible-x", "emptyDir": {}}), "prefix"),
        (lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (
            lambda pod: pod["volumes"].append(
                {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
            ),
            "service-account token",
        ),
        (
            lambda pod: pod["containers"][0]["volumeMounts"].append(
                {"name": "tmp", "mountPath": "/crucible/x"}
            ),
            "reserved",
        ),
        (lambda pod: pod["containers"].append({"name": "crucible-x", "image": "i"}), "prefix"),
        (lambda pod: pod.update(securityContext={"runAsUser": 0}), "runAsUser 0"),
    ],
)
def test_templates_crucible_would_break_are_refused(patch: Any, message: str) -> None:
    rendered = TEMPLATE.render(kube_samples.values())
    patch(rendered["spec"]["template"]["spec"])
    with pytest.raises(errors.TemplateError, match=message):
        instrument.instrument(rendered, target(), CONFIG)
