"""The Job template the chart ships, rendered and instrumented by the dispatcher's own code
with the settings the chart gives it, is a valid Job for every supported Kubernetes version,
and the evaluation pod is what the chart's policies expect: the sidecar's password reaches the
sidecar container only, the pod runs as the token-less account, the NetworkPolicy selects it."""

from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from dispatcher.kube import instrument, names, templates
from dispatcher.settings import DispatcherSettings
from tests.chart import render

SCENARIOS = {
    "native": render.CHART / "ci" / "default-values.yaml",
    "plain": render.CHART / "ci" / "plain-sidecar-values.yaml",
}


def evaluation_job(
    manifests: list[render.Manifest], settings: DispatcherSettings
) -> dict[str, Any]:
    text = render.one(manifests, "ConfigMap", "-job-template")["data"]["job-template.yaml"]
    template = templates.parse(text, main_container=settings.kubernetes.main_container)
    eval_id = "chart-check-1"
    job_name = names.job_name(eval_id)
    created_at = "2026-01-01T00:00:00Z"
    job = template.render(
        templates.Values(
            job_name=job_name,
            eval_id=eval_id,
            eval_label=names.eval_label(eval_id),
            image=settings.images[settings.default_image],
            command=["python", "-c", "print(42)"],
            timeout_seconds=60,
            cpu=settings.limits.cpu_default,
            memory=settings.limits.memory_default,
            env={"ANSWER": "42"},
            created_at=created_at,
        )
    )
    target = instrument.Target(
        eval_id=eval_id,
        job_name=job_name,
        timeout_seconds=60,
        labels={"team": "chart"},
        created_at=created_at,
        main_container=template.main_container,
    )
    return instrument.instrument(job, target, settings.kubernetes)


@pytest.fixture(params=list(SCENARIOS))
def scenario(
    request: pytest.FixtureRequest,
    helm: str,
    chart_settings: Callable[[list[render.Manifest]], DispatcherSettings],
) -> tuple[str, list[render.Manifest], dict[str, Any]]:
    manifests = render.template(values=[SCENARIOS[request.param]])
    return request.param, manifests, evaluation_job(manifests, chart_settings(manifests))


@pytest.mark.parametrize("version", render.KUBE_VERSIONS)
def test_instrumented_job_validates_against_kubernetes(
    scenario: tuple[str, list[render.Manifest], dict[str, Any]], version: str
) -> None:
    _, _, job = scenario
    kubernetes_validate.validate(job, version, strict=True)


def test_sidecar_password_is_mounted_into_the_sidecar_only(
    scenario: tuple[str, list[render.Manifest], dict[str, Any]],
) -> None:
    mode, manifests, job = scenario
    pod = job["spec"]["template"]["spec"]
    sidecar_secret = render.one(manifests, "Secret", "-sidecar-redis")["metadata"]["name"]
    volumes = [
        v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == sidecar_secret
    ]
    assert len(volumes) == 1
    everyone = pod["containers"] + pod["initContainers"]
    mounting = [
        c["name"] for c in everyone if any(m["name"] in volumes for m in c.get("volumeMounts", []))
    ]
    assert mounting == [instrument.SIDECAR_CONTAINER]
    sidecar = next(c for c in everyone if c["name"] == instrument.SIDECAR_CONTAINER)
    assert (sidecar.get("restartPolicy") == "Always") is (mode == "native")
    assert not any("secretKeyRef" in str(e) for c in everyone for e in c.get("env", []))
    assert pod.get("shareProcessNamespace") in (None, False)


def test_evaluation_pod_runs_without_token_and_under_the_network_policy(
    scenario: tuple[str, list[render.Manifest], dict[str, Any]],
) -> None:
    _, manifests, job = scenario
    pod_template = job["spec"]["template"]
    pod = pod_template["spec"]
    account = render.one(manifests, "ServiceAccount", "-evaluation")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False
    policy = render.one(manifests, "NetworkPolicy", "-evaluation")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_template["metadata"]["labels"].items()
    for container in pod["containers"] + pod["initContainers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
