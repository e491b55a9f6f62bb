"""The Job template the chart ships, rendered and instrumented by the dispatcher's own code
with the settings the chart gives it, is a valid Job for every supported Kubernetes version,
and the evaluation pod is what the chart's policies expect: no Secret and no Redis credential in
it, only the sidecar's token for its own evaluation, pointing at the dispatcher Service; the pod
runs as the token-less account, the NetworkPolicy selects it."""

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from dispatcher.api import ingest
from dispatcher.backends.kube.jobs import instrument, names, templates
from dispatcher.settings import DispatcherSettings
from tests.chart import render
from wire import ingest as wire_ingest

EVAL_ID = "chart-check-1"

SCENARIOS = {
    "native": render.CHART / "ci" / "default-values.yaml",
    "plain": render.CHART / "ci" / "plain-sidecar-values.yaml",
}


def evaluation_job(
    manifests: list[render.Manifest], settings: DispatcherSettings
) -> dict[str, Any]:
    text = render.one(manifests, "ConfigMap", "-job-template")["data"]["job-template.yaml"]
    template = templates.parse(text, main_container=settings.kubernetes.main_container)
    eval_id = EVAL_ID
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
    # As the Kubernetes backend does: the sidecar gets the URL and its evaluation's token.
    link = ingest.SidecarLink(url=settings.sidecar_url(), key=settings.ingest_key_bytes())
    return instrument.instrument(job, target, settings.kubernetes, sidecar_env=link.env(eval_id))


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


def test_evaluation_pod_holds_no_secret_and_no_redis_credential(
    scenario: tuple[str, list[render.Manifest], dict[str, Any]],
) -> None:
    mode, manifests, job = scenario
    pod = job["spec"]["template"]["spec"]
    assert [v for v in pod["volumes"] if set(v) - {"name", "emptyDir"}] == []
    everyone = pod["containers"] + pod["initContainers"]
    text = json.dumps(job)
    assert "secretKeyRef" not in text
    assert "REDIS" not in text.upper()
    # No secret the chart renders (passwords, API token, ingest key) is in the pod.
    for secret in render.find(manifests, "Secret"):
        for key in secret["data"]:
            if key != "users.acl":
                assert render.secret_value(manifests, secret["metadata"]["name"], key) not in text
    sidecar = next(c for c in everyone if c["name"] == instrument.SIDECAR_CONTAINER)
    assert (sidecar.get("restartPolicy") == "Always") is (mode == "native")
    assert pod.get("shareProcessNamespace") in (None, False)


def test_only_the_sidecar_gets_the_ingest_url_and_its_own_token(
    scenario: tuple[str, list[render.Manifest], dict[str, Any]],
) -> None:
    _, manifests, job = scenario
    pod = job["spec"]["template"]["spec"]
    key = render.secret_value(manifests, f"{render.FULLNAME}-ingest-key", "ingest-key")
    holders = {
        c["name"]: {e["name"]: e.get("value") for e in c.get("env", [])}
        for c in pod["containers"] + pod["initContainers"]
    }
    sidecar = holders.pop(instrument.SIDECAR_CONTAINER)
    assert sidecar[ingest.SIDECAR_ENV_URL] == (
        f"http://{render.FULLNAME}-dispatcher.{render.NAMESPACE}.svc:8080"
    )
    token = sidecar[ingest.SIDECAR_ENV_TOKEN]
    assert token == wire_ingest.eval_token(key.encode(), EVAL_ID)
    assert not wire_ingest.token_matches(key.encode(), "another-evaluation", token)
    for name, env in holders.items():
        assert token not in json.dumps(env), name
        assert not [n for n in env if n.startswith("CRUCIBLE_SIDECAR_")], name
    # The URL's host and port are the dispatcher Service's, which targets the pod port the
    # evaluation NetworkPolicy lets the pod reach.
    service = render.one(manifests, "Service", "-dispatcher")
    assert sidecar[ingest.SIDECAR_ENV_URL].startswith(
        f"http://{service['metadata']['name']}.{render.NAMESPACE}.svc:{service['spec']['ports'][0]['port']}"
    )


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
